//! The control socket server: HTTP/1.1 + JSON on a unix socket (mode 0600). Routes and bodies
//! are `bgpd_api`'s, shared with the client.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use bgpd_api::{AttachRequest, ErrorBody, ErrorKind, LabelsRequest, paths};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ipnetwork::IpNetwork;
use serde::Serialize;
use tokio::net::UnixListener;

use crate::daemon::Daemon;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// An error as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Category (and HTTP status).
    pub kind: ErrorKind,
    /// Text for people.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }

    /// A failure of ours.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Binds the control socket at `path` (replacing a stale one), root-only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket forever.
pub async fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let daemon = daemon.clone();
                async move { Ok::<_, Infallible>(handle(&daemon, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("control socket connection: {e}");
            }
        });
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    let status =
        StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ErrorBody {
            error: e.message.clone(),
            kind: e.kind,
        },
    )
}

fn reply<T: Serialize>(result: Result<T, ApiError>) -> Response<Full<Bytes>> {
    match result {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(&e),
    }
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

/// The `prefix` query parameter, if any.
fn prefix_filter(query: Option<&str>) -> Result<Option<IpNetwork>, ApiError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("prefix=") {
            let v = v.replace("%2F", "/").replace("%2f", "/");
            return v
                .parse()
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("prefix {v:?}: {e}")));
        }
    }
    Ok(None)
}

async fn handle(daemon: &Daemon, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    tracing::debug!(%method, %path, "control request");
    match (method, path.as_str()) {
        (Method::GET, paths::STATUS) => reply(daemon.status().await),
        (Method::GET, paths::PEERS) => reply(daemon.peers().await),
        (Method::GET, paths::ROUTES) => match prefix_filter(req.uri().query()) {
            Ok(filter) => reply(daemon.routes(filter).await),
            Err(e) => error(&e),
        },
        (Method::GET, paths::IPAM) => reply(daemon.ipam_view().await),
        (Method::GET, paths::ENDPOINTS) => reply(Ok::<_, ApiError>(daemon.endpoint_list().await)),
        (Method::POST, paths::ENDPOINTS) => match body::<AttachRequest>(req).await {
            Ok(request) => reply(daemon.attach(&request).await),
            Err(e) => error(&e),
        },
        (Method::POST, paths::RELOAD) => reply(daemon.reload().await),
        (Method::PUT, p) if paths::parse_endpoint_labels(p).is_some() => {
            let (id, ifname) = paths::parse_endpoint_labels(p).unwrap_or_default();
            let (id, ifname) = (id.to_string(), ifname.to_string());
            match body::<LabelsRequest>(req).await {
                Ok(request) => reply(daemon.relabel(&id, &ifname, request.labels).await),
                Err(e) => error(&e),
            }
        }
        (Method::DELETE, p) if paths::parse_endpoint(p).is_some() => {
            let (id, ifname) = paths::parse_endpoint(p).unwrap_or_default();
            reply(daemon.detach(id, ifname).await)
        }
        (_, p)
            if [
                paths::STATUS,
                paths::PEERS,
                paths::ROUTES,
                paths::IPAM,
                paths::ENDPOINTS,
                paths::RELOAD,
            ]
            .contains(&p)
                || paths::parse_endpoint(p).is_some()
                || paths::parse_endpoint_labels(p).is_some() =>
        {
            error(&ApiError::new(
                ErrorKind::MethodNotAllowed,
                format!("{} is not allowed on {p}", req.method()),
            ))
        }
        (_, p) => error(&ApiError::new(
            ErrorKind::NotFound,
            format!("no such path: {p}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_filter_parses_encoded_slashes() {
        assert_eq!(prefix_filter(None).unwrap(), None);
        assert_eq!(
            prefix_filter(Some("prefix=10.244.0.0%2F16")).unwrap(),
            Some("10.244.0.0/16".parse().unwrap())
        );
        assert_eq!(
            prefix_filter(Some("x=1&prefix=fd00::/64")).unwrap(),
            Some("fd00::/64".parse().unwrap())
        );
        assert_eq!(
            prefix_filter(Some("prefix=bogus")).unwrap_err().kind,
            ErrorKind::BadRequest
        );
    }
}
