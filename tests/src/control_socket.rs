//! A stand-in for bgpd's control socket: HTTP/1.1 over a unix socket answering recorded JSON,
//! for testing the clients (`routectl`, the CNI plugin) at the edge before or besides a real
//! daemon. It speaks just enough HTTP for one request per connection, as the clients send.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tempfile::TempDir;

/// A canned answer: the HTTP status and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response body (JSON text).
    pub body: String,
}

impl Answer {
    /// A 200 answer with `body`.
    pub fn ok(body: impl Into<String>) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
        }
    }

    /// An error answer shaped like bgpd's (`{"error": …, "kind": …}`).
    pub fn error(status: u16, kind: &str, error: &str) -> Answer {
        Answer {
            status,
            body: serde_json::json!({ "error": error, "kind": kind }).to_string(),
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `GET`, `POST`, `DELETE`…
    pub method: String,
    /// Path with query, e.g. `/v1/routes?prefix=10.0.0.0%2F8`.
    pub path: String,
    /// The request body.
    pub body: String,
}

type Routes = Vec<(String, String, Answer)>;

/// The fake server; stops and removes its socket on drop.
#[derive(Debug)]
pub struct ControlSocket {
    dir: TempDir,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl ControlSocket {
    /// Serves `routes`: `(method, path prefix, answer)`, the first whose method matches and
    /// whose prefix starts the request path wins; anything else gets a 404 in bgpd's shape.
    pub fn serve(routes: Vec<(&str, &str, Answer)>) -> io::Result<ControlSocket> {
        let dir = tempfile::Builder::new().prefix("testkit-api-").tempdir()?;
        let listener = UnixListener::bind(dir.path().join("bgpd.sock"))?;
        let routes: Routes = routes
            .into_iter()
            .map(|(m, p, a)| (m.to_string(), p.to_string(), a))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        // A client that hangs up mid-request is its own problem.
                        let _ = answer(s, &routes, &received);
                    }
                }
            })
        };
        Ok(ControlSocket {
            dir,
            stop,
            received,
            thread: Some(thread),
        })
    }

    /// The socket path to give the client.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("bgpd.sock")
    }

    /// Every request so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(self.path());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: UnixStream, routes: &Routes, received: &Mutex<Vec<Received>>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        match header.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value.trim().parse().unwrap_or(0);
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Received {
            method: method.clone(),
            path: path.clone(),
            body,
        });
    let reply = routes
        .iter()
        .find(|(m, p, _)| *m == method && path.starts_with(p.as_str()))
        .map(|(_, _, a)| a.clone())
        .unwrap_or_else(|| Answer::error(404, "not_found", &format!("no route {method} {path}")));
    write_reply(stream, &reply)
}

fn write_reply(mut stream: UnixStream, reply: &Answer) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(reply.body.as_bytes())?;
    stream.flush()
}
