//! Where our routes live (table) and how they are tagged (route protocol number).

use std::fmt;

/// Our default route protocol number. iproute2 names none of 0–18, 42, 99 and 186–197 (FRR) as
/// 98, and Calico (80) and BIRD (12) use others, so `ip route show proto 98` lists exactly our
/// routes.
pub const DEFAULT_PROTOCOL: u8 = 98;

/// Why a table or protocol number cannot be ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Table 0 means "unspecified" and 255 is the kernel's `local` table.
    #[error("routing table {0} cannot hold our routes (0 is unspecified, 255 is local)")]
    Table(u32),
    /// Numbers up to 4 (`static`) are interpreted by the kernel or belong to the admin.
    #[error("route protocol {0} is reserved (0–4 are unspec, redirect, kernel, boot, static)")]
    Protocol(u8),
}

/// A routing table id (`ip route show table <n>`); 254 is `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableId(u32);

impl TableId {
    /// The main table.
    pub const MAIN: TableId = TableId(254);

    /// Table `id`; 0 and 255 (local) are refused.
    pub fn new(id: u32) -> Result<TableId, ConfigError> {
        match id {
            0 | 255 => Err(ConfigError::Table(id)),
            _ => Ok(TableId(id)),
        }
    }

    /// The raw id.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The route protocol number that marks a route as ours (`ip route show proto <n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtocolId(u8);

impl ProtocolId {
    /// Protocol `n`; the kernel's and the admin's numbers (0–4) are refused.
    pub fn new(n: u8) -> Result<ProtocolId, ConfigError> {
        if n <= 4 {
            Err(ConfigError::Protocol(n))
        } else {
            Ok(ProtocolId(n))
        }
    }

    /// The raw number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for ProtocolId {
    fn default() -> ProtocolId {
        ProtocolId(DEFAULT_PROTOCOL)
    }
}

impl fmt::Display for ProtocolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where and how we program routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibConfig {
    /// The table our routes go into.
    pub table: TableId,
    /// The protocol number our routes carry; routes with another number are never touched.
    pub protocol: ProtocolId,
}

impl Default for FibConfig {
    fn default() -> FibConfig {
        FibConfig {
            table: TableId::MAIN,
            protocol: ProtocolId::default(),
        }
    }
}

/// The metric the kernel gives a route added without one: 0 for IPv4, 1024 for IPv6. Our routes
/// carry it, so a route of another protocol with the same prefix and this metric is the one a
/// replace would overwrite.
pub fn default_metric(ipv6: bool) -> u32 {
    if ipv6 { 1024 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_numbers_are_refused() {
        assert_eq!(TableId::new(0), Err(ConfigError::Table(0)));
        assert_eq!(TableId::new(255), Err(ConfigError::Table(255)));
        assert_eq!(TableId::new(1000).map(TableId::get), Ok(1000));
        assert_eq!(ProtocolId::new(4), Err(ConfigError::Protocol(4)));
        assert_eq!(ProtocolId::new(5).map(ProtocolId::get), Ok(5));
        assert_eq!(ProtocolId::default().get(), DEFAULT_PROTOCOL);
    }
}
