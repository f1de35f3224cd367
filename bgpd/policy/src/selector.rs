//! Label selectors in Calico's syntax: the project's one selector language lives in
//! [`bgpd_config::selector`] (pool node selectors use it too); this path keeps working.

pub use bgpd_config::{Labels, Selector, SelectorError};

#[cfg(test)]
mod tests {
    use super::*;

    /// Policy selectors and pool node selectors are the same type, parsed the same way.
    #[test]
    fn policy_selectors_are_the_config_language() {
        let s: Selector = "role == \"db\" && env in {\"prod\",\"stage\"}"
            .parse()
            .unwrap();
        let labels: Labels = [("role", "db"), ("env", "stage")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(s.matches(&labels));
        let e: SelectorError = Selector::parse("role = \"db\"").unwrap_err();
        assert_eq!(e.column, 6);
        let node: bgpd_config::Selector = s.clone();
        assert_eq!(node.to_string(), "role == 'db' && env in {'prod', 'stage'}");
    }
}
