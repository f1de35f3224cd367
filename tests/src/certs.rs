//! A throwaway PKI made with the `openssl` CLI, for TLS tests: a CA, a server certificate for
//! 127.0.0.1 and localhost, and a client certificate, as PEM files in a directory.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;

/// PEM files of one throwaway CA and the certificates it signed (EC P-256, valid two days).
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Makes a new CA in `dir` (created if missing) and signs a server certificate (SAN
    /// 127.0.0.1, ::1 and localhost) and a client certificate (CN `testkit-client`) with it.
    /// Two calls make two unrelated CAs.
    pub fn generate(dir: &Path) -> io::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        let ca_key = pki.file("ca.key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            // Unrelated CAs get different names, so a wrong one is an unknown issuer.
            &format!("/CN=testkit-ca-{}", serial()),
            "-keyout",
            &ca_key,
            "-out",
            &pki.file("ca.pem"),
        ])?;
        pki.sign(
            "server",
            "/CN=testkit-etcd",
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth",
        )?;
        pki.sign(
            "client",
            "/CN=testkit-client",
            "extendedKeyUsage=clientAuth",
        )?;
        Ok(pki)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client's certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client's key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// A key and a certificate `<name>.key`/`<name>.pem` signed by the CA, with `extensions`
    /// (lines of an openssl extension file).
    fn sign(&self, name: &str, subject: &str, extensions: &str) -> io::Result<()> {
        let key = self.file(&format!("{name}.key"));
        let csr = self.file(&format!("{name}.csr"));
        let ext = self.file(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{extensions}\n"
            ),
        )?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.file("ca.pem"),
            "-CAkey",
            &self.file("ca.key"),
            "-set_serial",
            &serial(),
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &self.file(&format!("{name}.pem")),
        ])?;
        Ok(())
    }
}

fn openssl(args: &[&str]) -> io::Result<()> {
    run(Command::new("openssl").args(args)).map(|_| ())
}

/// A serial number unique enough for certificates that live for one test.
fn serial() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}", nanos ^ u128::from(std::process::id()))
}
