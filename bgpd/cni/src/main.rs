//! The plugin binary: environment and stdin in, one JSON document on stdout, exit status 1 on
//! error (the error JSON says why).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use bgpd_cni::{CniError, Code, Outcome};

fn main() -> ExitCode {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run(&env, &stdin),
        Err(e) => failure(CniError::new(Code::Io, "cannot read stdin", e.to_string())),
    };
    if let Some(doc) = &outcome.stdout {
        let mut out = std::io::stdout().lock();
        // Nothing else to tell the runtime if stdout is gone.
        let _ = writeln!(out, "{doc}").and_then(|()| out.flush());
    }
    if outcome.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run(env: &HashMap<String, String>, stdin: &[u8]) -> Outcome {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(bgpd_cni::run(env, stdin)),
        Err(e) => failure(CniError::new(Code::Io, "cannot start", e.to_string())),
    }
}

fn failure(e: CniError) -> Outcome {
    Outcome {
        stdout: Some(e.to_json(bgpd_cni::netconf::DEFAULT_VERSION)),
        failed: true,
    }
}
