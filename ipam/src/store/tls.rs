//! TLS to etcd: the CA that signed the members' certificates and, for client-certificate
//! auth, this client's certificate and key, read and checked from PEM files before any
//! connection is made, so a bad file is reported by name at startup.

use std::fmt;
use std::path::{Path, PathBuf};

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS settings could not be used; file errors name the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {reason}", path.display())]
    Read {
        /// Which file it is ("CA file", "client certificate", "client key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// A file was read but holds no usable PEM item of the expected kind.
    #[error("{what} {} holds no usable PEM {expected}: {reason}", path.display())]
    Pem {
        /// Which file it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        expected: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// TLS is configured but an endpoint is plain `http://`.
    #[error("TLS is configured, but etcd endpoint {0} is plain http: use https://")]
    PlainEndpoint(String),
    /// An `https://` endpoint without a CA to check the server against.
    #[error("etcd endpoint {0} is https, but no CA file is given to verify it")]
    NoCa(String),
    /// The TLS handshake failed: the server's certificate did not verify, the server refused
    /// ours, or the other side does not speak TLS. Retrying cannot help.
    #[error("TLS handshake with etcd failed: {0}")]
    Handshake(String),
    /// The server name override is not a valid DNS name or IP address.
    #[error("TLS server name {0:?} is not a DNS name or IP address")]
    ServerName(String),
}

/// TLS settings for talking to etcd, with the PEM contents already read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdTls {
    ca: Vec<u8>,
    identity: Option<ClientIdentity>,
    server_name: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
struct ClientIdentity {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Never prints key material.
impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdTls")
            .field("client_cert", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl EtcdTls {
    /// Reads the CA bundle and, for client-certificate auth, the client's certificate and
    /// key (`client = Some((cert, key))`).
    pub fn from_files(ca: &Path, client: Option<(&Path, &Path)>) -> Result<EtcdTls, TlsError> {
        let ca = read_certificates("CA file", ca)?;
        let identity = match client {
            Some((cert, key)) => Some(ClientIdentity {
                cert: read_certificates("client certificate", cert)?,
                key: read_key(key)?,
            }),
            None => None,
        };
        Ok(EtcdTls {
            ca,
            identity,
            server_name: None,
        })
    }

    /// From bgpd's `[etcd.tls]` (the config has checked that cert and key come together).
    pub fn from_config(files: &bgpd_config::TlsFiles) -> Result<EtcdTls, TlsError> {
        let client = files.cert_file.as_deref().zip(files.key_file.as_deref());
        let tls = EtcdTls::from_files(&files.ca_file, client)?;
        match &files.server_name {
            Some(name) => tls.with_server_name(name),
            None => Ok(tls),
        }
    }

    /// Verifies the servers' certificates against `name` instead of each endpoint's host,
    /// for members reached by an address their certificate does not list.
    pub fn with_server_name(mut self, name: &str) -> Result<EtcdTls, TlsError> {
        if rustls::pki_types::ServerName::try_from(name).is_err() {
            return Err(TlsError::ServerName(name.to_string()));
        }
        self.server_name = Some(name.to_string());
        Ok(self)
    }

    /// Whether a client certificate is presented.
    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    fn client_config(&self) -> TlsOptions {
        let mut tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            // etcd speaks gRPC over HTTP/2 on its TLS port whatever ALPN says.
            .assume_http2(true);
        if let Some(id) = &self.identity {
            tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        tls
    }
}

/// Adds TLS to `options` for `endpoints`: with `tls`, every endpoint must be `https://`;
/// without, none may be (a server nobody can verify would fail every handshake).
pub fn secure(
    options: ConnectOptions,
    endpoints: &[String],
    tls: Option<&EtcdTls>,
) -> Result<ConnectOptions, TlsError> {
    match tls {
        Some(tls) => match endpoints.iter().find(|e| !e.starts_with("https://")) {
            Some(plain) => Err(TlsError::PlainEndpoint(plain.clone())),
            None => Ok(options.with_tls(tls.client_config())),
        },
        None => match endpoints.iter().find(|e| e.starts_with("https://")) {
            Some(https) => Err(TlsError::NoCa(https.clone())),
            None => Ok(options),
        },
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a PEM file holding one or more certificates, all of which must parse.
fn read_certificates(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(what, path)?;
    let bad = |reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        expected: "certificate",
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| bad(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("no CERTIFICATE section found".into()));
    }
    Ok(pem)
}

fn read_key(path: &Path) -> Result<Vec<u8>, TlsError> {
    let what = "client key";
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        expected: "private key",
        reason: e.to_string(),
    })?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway self-signed certificate and its key (P-256), for parsing only.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUBM27uw6ffM09ge3XcUOiUW92V6IwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdW5pdC10ZXN0MB4XDTI2MTEyMzAzNDY0OFoXDTM2MTEyMDAz
NDY0OFowFDESMBAGA1UEAwwJdW5pdC10ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAErWVyAGJAYfEJ/cgHwn2M0aoDCiEkez9lQ02TAITjmjHGQhV5vQ1xWcrb
IYS2Jsa+TMqRU/mRRAHoMvpzun9wZKNTMFEwHQYDVR0OBBYEFOoHx+AhbP9FpSyP
qOhU5YPGl5aPMB8GA1UdIwQYMBaAFOoHx+AhbP9FpSyPqOhU5YPGl5aPMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAJe09rxrxFgewiwtE1JQSRBg
VT1ANyM7+h6WJRgYbNT6AiBmRFW6hC19JOU/QJLyKffVRN8FiGNmhKZ8FTYw+ETN
Iw==
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSRlJ4AMYqWz0OdXP
m80xY7rRX+ReWcOHUa7QEczgTj6hRANCAAStZXIAYkBh8Qn9yAfCfYzRqgMKISR7
P2VDTZMAhOOaMcZCFXm9DXFZytshhLYmxr5MypFT+ZFEAegy+nO6f3Bk
-----END PRIVATE KEY-----
";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn files_are_read_and_checked_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let ca = write(d, "ca.pem", CERT);
        let key = write(d, "key.pem", KEY);
        let tls = EtcdTls::from_files(&ca, Some((&ca, &key))).unwrap();
        assert!(tls.has_client_certificate());

        let missing = d.join("missing.pem");
        let e = EtcdTls::from_files(&missing, None).unwrap_err();
        assert!(matches!(&e, TlsError::Read { path, what: "CA file", .. } if *path == missing));
        assert!(e.to_string().contains("missing.pem"), "{e}");

        // A key where the certificate should be, and the other way round.
        let e = EtcdTls::from_files(&key, None).unwrap_err();
        assert!(
            matches!(
                &e,
                TlsError::Pem {
                    expected: "certificate",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("key.pem"), "{e}");
        let e = EtcdTls::from_files(&ca, Some((&ca, &ca))).unwrap_err();
        assert!(
            matches!(
                &e,
                TlsError::Pem {
                    what: "client key",
                    expected: "private key",
                    ..
                }
            ),
            "{e}"
        );

        let garbage = write(d, "garbage.pem", "-----BEGIN CERTIFICATE-----\n%%%\n");
        let e = EtcdTls::from_files(&garbage, None).unwrap_err();
        assert!(matches!(&e, TlsError::Pem { .. }), "{e}");
    }

    #[test]
    fn endpoints_must_match_the_tls_setting() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let ca = write(d, "ca.pem", CERT);
        let tls = EtcdTls::from_files(&ca, None).unwrap();
        let https = vec!["https://127.0.0.1:2379".to_string()];
        let http = vec!["http://127.0.0.1:2379".to_string()];
        assert!(secure(ConnectOptions::new(), &https, Some(&tls)).is_ok());
        assert!(secure(ConnectOptions::new(), &http, None).is_ok());
        assert_eq!(
            secure(ConnectOptions::new(), &http, Some(&tls)).unwrap_err(),
            TlsError::PlainEndpoint(http[0].clone())
        );
        assert_eq!(
            secure(ConnectOptions::new(), &https, None).unwrap_err(),
            TlsError::NoCa(https[0].clone())
        );
        assert!(tls.clone().with_server_name("etcd.example").is_ok());
        assert!(tls.clone().with_server_name("127.0.0.1").is_ok());
        assert_eq!(
            tls.with_server_name("not a name").unwrap_err(),
            TlsError::ServerName("not a name".into())
        );
    }
}
