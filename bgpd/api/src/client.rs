//! An async client of the control socket: one HTTP/1.1 connection per request over a unix
//! stream (hyper), JSON bodies.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::paths;
use crate::types::{
    AttachRequest, DetachReport, Endpoint, ErrorBody, IpamView, LabelsRequest, Peer, ReloadReport,
    Routes, Status,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket (no file, or a stale one).
    #[error("bgpd is not running at {}: {source}", path.display())]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
        /// The connect error.
        source: std::io::Error,
    },
    /// The socket exists but we may not use it (it is root-only).
    #[error("permission denied on {} (the control socket is root-only)", path.display())]
    PermissionDenied {
        /// The socket path tried.
        path: PathBuf,
    },
    /// The daemon answered with an error.
    #[error("bgpd: {} (HTTP {status})", body.error)]
    Api {
        /// HTTP status code.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
    /// The exchange broke off or was not HTTP as expected.
    #[error("control socket {what}: {detail}")]
    Protocol {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// The answer was not the JSON we expect (a daemon of another version?).
    #[error("unexpected answer from bgpd: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A client of one daemon's control socket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the daemon listening at `socket`. Nothing is connected until a call.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::GET, paths::STATUS, None::<&()>).await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<Peer>, ClientError> {
        self.call(Method::GET, paths::PEERS, None::<&()>).await
    }

    /// `GET /v1/routes`, only routes inside `prefix` when given (e.g. `10.244.0.0/16`).
    pub async fn routes(&self, prefix: Option<&str>) -> Result<Routes, ClientError> {
        let path = match prefix {
            Some(p) => format!("{}?prefix={}", paths::ROUTES, p.replace('/', "%2F")),
            None => paths::ROUTES.to_string(),
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/ipam`.
    pub async fn ipam(&self) -> Result<IpamView, ClientError> {
        self.call(Method::GET, paths::IPAM, None::<&()>).await
    }

    /// `GET /v1/endpoints`.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, ClientError> {
        self.call(Method::GET, paths::ENDPOINTS, None::<&()>).await
    }

    /// `POST /v1/endpoints`: attach a container (idempotent for the same id and ifname).
    pub async fn attach(&self, request: &AttachRequest) -> Result<Endpoint, ClientError> {
        self.call(Method::POST, paths::ENDPOINTS, Some(request))
            .await
    }

    /// `DELETE /v1/endpoints/<id>/<ifname>`: detach and release its addresses (idempotent).
    pub async fn detach(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<DetachReport, ClientError> {
        let path = paths::endpoint(container_id, ifname);
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// `PUT /v1/endpoints/<id>/<ifname>/labels`: replace a running endpoint's labels.
    pub async fn set_labels(
        &self,
        container_id: &str,
        ifname: &str,
        labels: &crate::Labels,
    ) -> Result<Endpoint, ClientError> {
        let path = paths::endpoint_labels(container_id, ifname);
        let body = LabelsRequest {
            labels: labels.clone(),
        };
        self.call(Method::PUT, &path, Some(&body)).await
    }

    /// `POST /v1/reload`: re-read the configuration file, apply the difference.
    pub async fn reload(&self) -> Result<ReloadReport, ClientError> {
        self.call(Method::POST, paths::RELOAD, None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.exchange(method, path, body).await?;
        let (status, bytes) = bytes;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(&bytes).trim().to_string(),
            kind: crate::ErrorKind::Internal,
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            body,
        })
    }

    async fn exchange<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::PermissionDenied {
                    path: self.socket.clone(),
                }
            } else {
                ClientError::NotRunning {
                    path: self.socket.clone(),
                    source,
                }
            }
        })?;
        let protocol = |what: &'static str| {
            move |e: hyper::Error| ClientError::Protocol {
                what,
                detail: e.to_string(),
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(protocol("handshake"))?;
        // The connection task ends with the exchange; its error, if any, shows in the response.
        tokio::spawn(conn);
        let payload = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(payload))
            .map_err(|e| ClientError::Protocol {
                what: "request",
                detail: e.to_string(),
            })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(protocol("request"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(protocol("response body"))?
            .to_bytes();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_says_the_daemon_is_not_running() {
        let dir = std::env::temp_dir().join(format!("bgpd-api-test-{}", std::process::id()));
        let client = Client::new(dir.join("nope.sock"));
        let err = client.status().await.unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("bgpd is not running at "),
            "{err}"
        );
    }
}
