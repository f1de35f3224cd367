//! The one error type of the crate, always pointing into the file.

use std::path::{Path, PathBuf};

use crate::location::{KeyPath, line_column, path_at, span_of};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The key, as a dotted path (`bgp.peers[0].asn`), or `(top level)`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// An error at byte `offset` of `text`; the key is the innermost one covering the offset.
    pub(crate) fn at_offset(
        origin: &Path,
        text: &str,
        offset: usize,
        message: &str,
    ) -> ConfigError {
        let key = path_at(text, offset);
        ConfigError::invalid(origin, text, offset, &key, message)
    }

    /// An error about `key`; located at the key's value in `text` (or the top when absent).
    pub(crate) fn at_key(origin: &Path, text: &str, key: &KeyPath, message: &str) -> ConfigError {
        let offset = span_of(text, key).map_or(0, |s| s.start);
        ConfigError::invalid(origin, text, offset, key, message)
    }

    fn invalid(
        origin: &Path,
        text: &str,
        offset: usize,
        key: &KeyPath,
        message: &str,
    ) -> ConfigError {
        let (line, column) = line_column(text, offset);
        ConfigError::Invalid {
            path: origin.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            // toml's messages end with a newline and sometimes repeat the source line; keep the
            // first line, since the location is given separately.
            message: message.lines().next().unwrap_or(message).trim().to_string(),
        }
    }
}
