//! Serving one app instance to one local user: an HTTP listener on a port
//! of its own on 127.0.0.1, so that each (instance, user) pair is an origin
//! of its own and the browser keeps their storage apart.
//!
//! Every response, errors and 404s included, carries Delta Chat's content
//! security policy for webxdc, `X-Content-Type-Options: nosniff` and
//! `Cross-Origin-Resource-Policy: same-origin`. The last one keeps pages of
//! other origins from loading this origin's `/webxdc.js` (which holds the
//! bridge secret) as a script. A request must name this origin in `Host`
//! (else `421`), which keeps a DNS-rebinding page, whose requests carry its
//! own name, from reading the app or the secret. Only the app's files (from memory: see
//! [`crate::loader`]) and `/webxdc.js` are served, plus the bridge's
//! WebSocket at `/webxdc-bridge`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bridge::{self, PageSlot};
use crate::loader::App;
use crate::transport::Transport;
use crate::updates::UpdateStore;

/// Delta Chat's content security policy for webxdc apps, on every response.
pub const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline' blob:; \
font-src 'self' data: blob:; script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; \
connect-src 'self' data: blob:; img-src 'self' data: blob:; media-src 'self' data: blob:; \
webrtc 'block'";

/// The path of the bridge's WebSocket.
pub const BRIDGE_PATH: &str = "/webxdc-bridge";

/// The host's `webxdc.js`, with a placeholder for this origin's settings.
const WEBXDC_JS: &str = include_str!("js/webxdc.js");

/// State shared by the HTTP handlers and the bridge of one origin.
pub(crate) struct OriginState {
    pub(crate) app: Arc<App>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) instance: String,
    /// `http://127.0.0.1:PORT`, what the browser sends as `Origin`.
    pub(crate) origin: String,
    pub(crate) secret: String,
    webxdc_js: Vec<u8>,
    pub(crate) updates: Arc<UpdateStore>,
    /// The page connected to the bridge now (one at a time; a new page,
    /// a reload for instance, replaces the old one).
    pub(crate) page: tokio::sync::Mutex<Option<PageSlot>>,
    /// Becomes `true` when the origin stops: ends the bridge connections.
    pub(crate) stopping: watch::Receiver<bool>,
}

/// One served (app instance, local user): an origin of its own. Stops
/// serving when dropped (or [`stop`](Origin::stop)ped).
pub struct Origin {
    addr: SocketAddr,
    state: Arc<OriginState>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    feeder: JoinHandle<()>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("addr", &self.addr)
            .field("instance", &self.state.instance)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// Serves `app` as instance `instance` of the local user behind
    /// `transport`, on a free port of 127.0.0.1. Starts reading the
    /// instance's status updates at once, so that a page finds the past
    /// ones ready.
    pub async fn serve(
        app: Arc<App>,
        transport: Arc<dyn Transport>,
        instance: &str,
    ) -> std::io::Result<Origin> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let secret = random_secret()?;
        let config = serde_json::json!({
            "selfAddr": transport.self_addr(),
            "selfName": transport.self_name(),
            "secret": secret,
            "maxPayload": crate::transport::MAX_PAYLOAD,
            "maxUpdate": crate::transport::MAX_UPDATE_SIZE,
        });
        let webxdc_js = WEBXDC_JS
            .replace("__WEBXDC_HOST_CONFIG__", &config.to_string())
            .into_bytes();
        let (stop, stopping) = watch::channel(false);
        let updates = Arc::new(UpdateStore::new());
        let feeder = tokio::spawn(UpdateStore::feed(
            updates.clone(),
            transport.clone(),
            instance.to_owned(),
        ));
        let state = Arc::new(OriginState {
            app,
            transport,
            instance: instance.to_owned(),
            origin,
            secret,
            webxdc_js,
            updates,
            page: tokio::sync::Mutex::new(None),
            stopping: stopping.clone(),
        });
        let router = Router::new()
            .route(BRIDGE_PATH, get(bridge_upgrade))
            .fallback(serve_file)
            .with_state(state.clone())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                this_host_only,
            ))
            // Outermost: the refusals above get the headers too.
            .layer(axum::middleware::map_response(security_headers));
        let mut stopped = stopping;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%addr, "the app's HTTP server stopped: {e}");
            }
        });
        tracing::info!(%addr, instance, "serving the app");
        Ok(Origin {
            addr,
            state,
            stop,
            server,
            feeder,
        })
    }

    /// The address the app is served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open: the app's `index.html` on its own origin.
    pub fn url(&self) -> String {
        format!("{}/", self.state.origin)
    }

    /// The origin (`http://127.0.0.1:PORT`), as a browser writes it.
    pub fn origin(&self) -> &str {
        &self.state.origin
    }

    /// The bridge secret of this origin (it is also written into the
    /// `/webxdc.js` this origin serves). For tests and embedders that
    /// connect to the bridge themselves.
    pub fn secret(&self) -> &str {
        &self.state.secret
    }

    /// The app instance served here.
    pub fn instance(&self) -> &str {
        &self.state.instance
    }

    /// Stops serving: the listener closes and the page's bridge connection
    /// ends (its realtime channel is left).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // The connected page, if any, leaves its channel before we return.
        let slot = self.state.page.lock().await.take();
        if let Some(slot) = slot {
            slot.replace().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.feeder.abort();
    }
}

/// 32 random bytes from the OS, as hex.
fn random_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Adds the security headers to every response, whatever produced it.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Only requests that name this origin in `Host`. A page of another site
/// whose name a DNS rebinding points at 127.0.0.1 reaches this port with
/// its own name there, and must not read the app's files or `/webxdc.js`
/// (with the bridge secret in it).
async fn this_host_only(
    State(state): State<Arc<OriginState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let this = state.origin.strip_prefix("http://").unwrap_or_default();
    let named = request
        .headers()
        .get(header::HOST)
        .is_some_and(|h| h.as_bytes() == this.as_bytes());
    if !named {
        tracing::warn!("request for another host refused");
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server serves only its own origin",
        )
            .into_response();
    }
    next.run(request).await
}

/// The bridge: only for the page this origin served (its secret in the
/// query, this origin in `Origin`).
async fn bridge_upgrade(
    State(state): State<Arc<OriginState>>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let origin_ok = headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == state.origin.as_bytes());
    if !origin_ok {
        return refuse("this bridge belongs to another origin");
    }
    let secret = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or("");
    if !constant_time_eq(secret.as_bytes(), state.secret.as_bytes()) {
        return refuse("wrong or missing bridge secret");
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    upgrade
        .max_message_size(bridge::MAX_FRAME)
        .on_upgrade(move |socket| bridge::connected(socket, state))
}

fn refuse(why: &'static str) -> Response {
    tracing::warn!("bridge connection refused: {why}");
    (StatusCode::FORBIDDEN, why).into_response()
}

/// Compares without an early exit, so timing does not tell how much of a
/// guessed secret was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The app's files and `/webxdc.js`; nothing else.
async fn serve_file(State(state): State<Arc<OriginState>>, request: Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD").into_response();
    }
    let Some(path) = percent_decode(request.uri().path()) else {
        return not_found();
    };
    let mut path = path.trim_start_matches('/').to_owned();
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    let body = if path == "webxdc.js" {
        Some(state.webxdc_js.as_slice())
    } else {
        state.app.file(&path)
    };
    match body {
        Some(bytes) => {
            let mut response = Response::new(Body::from(bytes.to_vec()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
            response
        }
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is
/// not UTF-8. (A decoded `..` is harmless: paths are only looked up in
/// the app's map, never on disk.)
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type by file extension: the types webxdc apps use.
fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "md" | "toml" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b.html").as_deref(), Some("/a b.html"));
        assert_eq!(percent_decode("/%2e%2e/x").as_deref(), Some("/../x"));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%4"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
