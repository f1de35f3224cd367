//! CNI errors: the spec's well-known codes, and the error JSON printed on stdout.

use serde::Serialize;

/// The error codes this plugin returns (CNI spec 1.0 "Error" section; 100 and up are ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the network config's cniVersion is not one we speak.
    IncompatibleVersion,
    /// 2: a field of the network config we cannot honour (e.g. an `ipam` section).
    UnsupportedField,
    /// 3: CHECK for a container bgpd does not know.
    UnknownContainer,
    /// 4: a CNI_* environment variable is missing or invalid.
    InvalidEnv,
    /// 5: reading stdin or talking to bgpd failed.
    Io,
    /// 6: stdin is not JSON.
    Decode,
    /// 7: the network config is JSON but not a valid config.
    InvalidNetconf,
    /// 11: bgpd is not running or not ready; the runtime should retry.
    TryAgainLater,
    /// 100: bgpd refused the request (e.g. an address already in use, no address left).
    Refused,
    /// 101: CHECK found the endpoint differs from the previous result.
    Mismatch,
}

impl Code {
    /// The number in the error JSON.
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidNetconf => 7,
            Code::TryAgainLater => 11,
            Code::Refused => 100,
            Code::Mismatch => 101,
        }
    }
}

/// A failed invocation: printed as the CNI error JSON, exit status non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    /// What kind of failure.
    pub code: Code,
    /// Short text.
    pub msg: String,
    /// The detail (the value at fault, the daemon's words).
    pub details: String,
}

impl CniError {
    /// An error of `code`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error JSON for a config of `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            details: &'a str,
        }
        serde_json::to_value(Wire {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_default()
    }
}

/// Maps a control-socket error to the CNI code the runtime acts on.
impl From<bgpd_api::ClientError> for CniError {
    fn from(e: bgpd_api::ClientError) -> CniError {
        use bgpd_api::{ClientError, ErrorKind};
        let code = match &e {
            ClientError::NotRunning { .. } => Code::TryAgainLater,
            ClientError::Api { body, .. } if body.kind == ErrorKind::Unavailable => {
                Code::TryAgainLater
            }
            ClientError::Api { .. } => Code::Refused,
            ClientError::PermissionDenied { .. }
            | ClientError::Protocol { .. }
            | ClientError::Decode(_) => Code::Io,
        };
        CniError::new(code, "bgpd could not do it", e.to_string())
    }
}
