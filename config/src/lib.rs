//! bgpd's TOML configuration: schema, defaults and validation with file:line:key errors.
