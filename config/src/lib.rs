//! bgpd's TOML configuration: schema, defaults and validation with file:line:key errors.
//!
//! [`Config::load`] reads one file; every error it returns names the file, the line and column,
//! the key (as a path like `bgp.peers[1].asn`) and what was expected. Unknown keys are errors.
//! Nothing here touches the host: no I/O beyond reading the file.

mod error;
pub mod filter;
mod location;
mod schema;
pub mod selector;
mod validate;

use std::path::Path;

pub use error::ConfigError;
pub use filter::{FilterRule, Policies};
pub use schema::*;
pub use selector::{Labels, Selector, SelectorError};

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            ConfigError::at_offset(origin, text, offset, e.message())
        })?;
        validate::check(&config)
            .map_err(|v| ConfigError::at_key(origin, text, &v.key, &v.message))?;
        Ok(config)
    }
}
