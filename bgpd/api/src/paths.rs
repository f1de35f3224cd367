//! The routes of the control socket, shared by the server and the client so they cannot drift.

/// `GET`: [`crate::Status`].
pub const STATUS: &str = "/v1/status";
/// `GET`: `Vec<`[`crate::Peer`]`>`.
pub const PEERS: &str = "/v1/peers";
/// `GET` (query `prefix=<cidr>` optional): [`crate::Routes`].
pub const ROUTES: &str = "/v1/routes";
/// `GET`: [`crate::IpamView`].
pub const IPAM: &str = "/v1/ipam";
/// `GET`: `Vec<`[`crate::Endpoint`]`>`; `POST` [`crate::AttachRequest`]: [`crate::Endpoint`].
pub const ENDPOINTS: &str = "/v1/endpoints";
/// `POST`: [`crate::ReloadReport`].
pub const RELOAD: &str = "/v1/reload";

/// `DELETE /v1/endpoints/<container id>/<ifname>`: [`crate::DetachReport`]. Container ids and
/// interface names hold no `/` (CNI forbids it), so no escaping is needed.
pub fn endpoint(container_id: &str, ifname: &str) -> String {
    format!("{ENDPOINTS}/{container_id}/{ifname}")
}

/// `PUT /v1/endpoints/<container id>/<ifname>/labels` [`crate::LabelsRequest`]:
/// [`crate::Endpoint`].
pub fn endpoint_labels(container_id: &str, ifname: &str) -> String {
    format!("{}/labels", endpoint(container_id, ifname))
}

/// Splits `/v1/endpoints/<container id>/<ifname>/labels` back into its parts.
pub fn parse_endpoint_labels(path: &str) -> Option<(&str, &str)> {
    parse_endpoint(path.strip_suffix("/labels")?)
}

/// Splits `/v1/endpoints/<container id>/<ifname>` back into its parts.
pub fn parse_endpoint(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(ENDPOINTS)?.strip_prefix('/')?;
    let (id, ifname) = rest.split_once('/')?;
    (!id.is_empty() && !ifname.is_empty() && !ifname.contains('/')).then_some((id, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_paths_round_trip() {
        let p = endpoint("abc123", "eth0");
        assert_eq!(p, "/v1/endpoints/abc123/eth0");
        assert_eq!(parse_endpoint(&p), Some(("abc123", "eth0")));
        for bad in [
            "/v1/endpoints",
            "/v1/endpoints/",
            "/v1/endpoints/a",
            "/v1/endpoints/a/",
            "/v1/endpoints//e",
            "/v1/endpoints/a/b/c",
            "/v2/endpoints/a/b",
        ] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
        let l = endpoint_labels("abc123", "eth0");
        assert_eq!(l, "/v1/endpoints/abc123/eth0/labels");
        assert_eq!(parse_endpoint_labels(&l), Some(("abc123", "eth0")));
        assert_eq!(parse_endpoint(&l), None);
        assert_eq!(parse_endpoint_labels("/v1/endpoints/a/labels"), None);
        assert_eq!(parse_endpoint_labels(&p), None);
    }
}
