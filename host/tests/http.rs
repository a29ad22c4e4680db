//! The HTTP side of an origin, with a raw HTTP/1.1 client: what is served,
//! what is not, the security headers on every response, and who may open
//! the bridge.

mod common;

use std::sync::Arc;

use common::{app_of, get, raw_request, RawResponse};
use webxdc_host::server::{BRIDGE_PATH, CSP};
use webxdc_host::transport::memory::MemoryChat;
use webxdc_host::Origin;

async fn origin() -> Origin {
    let app = app_of(&[
        ("index.html", "<!doctype html><p>hello</p>"),
        ("manifest.toml", "name = \"Test\""),
        ("js/app.js", "console.log(1)"),
        ("style.css", "p{}"),
        ("sub/index.html", "sub"),
    ]);
    let chat = MemoryChat::new();
    Origin::serve(app, Arc::new(chat.user("alice")), "instance-1")
        .await
        .unwrap()
}

fn assert_security_headers(r: &RawResponse, what: &str) {
    assert_eq!(
        r.headers.get("content-security-policy").map(String::as_str),
        Some(CSP),
        "{what}: CSP"
    );
    assert_eq!(
        r.headers.get("x-content-type-options").map(String::as_str),
        Some("nosniff"),
        "{what}: nosniff"
    );
    assert_eq!(
        r.headers
            .get("cross-origin-resource-policy")
            .map(String::as_str),
        Some("same-origin"),
        "{what}: CORP"
    );
}

#[tokio::test]
async fn app_files_are_served_with_types_and_headers() {
    let o = origin().await;
    for (path, body, ty) in [
        ("/", "<!doctype html><p>hello</p>", "text/html"),
        ("/index.html", "<!doctype html><p>hello</p>", "text/html"),
        ("/js/app.js", "console.log(1)", "text/javascript"),
        ("/style.css", "p{}", "text/css"),
        ("/sub/", "sub", "text/html"),
        ("/js%2Fapp.js", "console.log(1)", "text/javascript"),
    ] {
        let r = get(o.addr(), path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, body.as_bytes(), "{path}");
        assert!(
            r.headers["content-type"].starts_with(ty),
            "{path}: {:?}",
            r.headers
        );
        assert_security_headers(&r, path);
    }
}

#[tokio::test]
async fn webxdc_js_carries_this_origins_settings() {
    let o = origin().await;
    let r = get(o.addr(), "/webxdc.js").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/javascript"));
    assert_security_headers(&r, "webxdc.js");
    let js = String::from_utf8(r.body).unwrap();
    assert!(js.contains(o.secret()), "the secret is written in");
    assert!(js.contains(r#""selfAddr":"alice@memory""#), "{js}");
    assert!(js.contains(r#""selfName":"alice""#));
    assert!(!js.contains("__WEBXDC_HOST_CONFIG__"));
    assert_eq!(o.secret().len(), 64, "256 bits as hex");
}

#[tokio::test]
async fn each_origin_has_its_own_port_and_secret() {
    let (a, b) = (origin().await, origin().await);
    assert_ne!(a.addr().port(), b.addr().port());
    assert_ne!(a.secret(), b.secret());
    assert_eq!(a.origin(), format!("http://{}", a.addr()));
    assert!(a.addr().ip().is_loopback());
}

#[tokio::test]
async fn nothing_else_is_served_and_every_refusal_has_the_headers() {
    let o = origin().await;
    for path in [
        "/missing.html",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/etc/passwd",
        "/%zz",
        "/sub",
        "/webxdc-bridge/x",
    ] {
        let r = get(o.addr(), path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_security_headers(&r, path);
    }
    let r = raw_request(o.addr(), "POST /index.html HTTP/1.1\r\nContent-Length: 0").await;
    assert_eq!(r.status, 405);
    assert_security_headers(&r, "POST");
    // The bridge path without an upgrade is refused too, with the headers.
    let r = get(o.addr(), BRIDGE_PATH).await;
    assert!(r.status >= 400, "{}", r.status);
    assert_security_headers(&r, "bridge without upgrade");
}

/// A WebSocket handshake request for the bridge.
async fn upgrade(o: &Origin, secret: &str, origin: Option<&str>) -> RawResponse {
    let mut head = format!(
        "GET {BRIDGE_PATH}?secret={secret} HTTP/1.1\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
    );
    if let Some(origin) = origin {
        head.push_str(&format!("\r\nOrigin: {origin}"));
    }
    // raw_request adds `Connection: close`; the handshake needs `Upgrade`.
    let mut stream = tokio::net::TcpStream::connect(o.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "{head}\r\nHost: {}\r\nConnection: Upgrade\r\n\r\n",
        o.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let headers = text
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: Vec::new(),
    }
}

#[tokio::test]
async fn only_the_served_page_may_open_the_bridge() {
    let o = origin().await;
    let other = origin().await;
    let own = o.origin().to_owned();
    // The right secret and origin: switching protocols.
    let r = upgrade(&o, o.secret(), Some(&own)).await;
    assert_eq!(r.status, 101, "the page's own bridge");
    assert_security_headers(&r, "101");

    // Wrong secret (another origin's, a truncated one, none).
    for secret in [other.secret(), &o.secret()[..63], ""] {
        let r = upgrade(&o, secret, Some(&own)).await;
        assert_eq!(r.status, 403, "secret {secret:?}");
        assert_security_headers(&r, "403 secret");
    }
    // Wrong or missing Origin, with the right secret.
    for origin in [
        Some(other.origin()),
        Some("http://localhost:1"),
        Some("null"),
        Some(&format!("{own}/")[..]),
        None,
    ] {
        let r = upgrade(&o, o.secret(), origin).await;
        assert_eq!(r.status, 403, "origin {origin:?}");
        assert_security_headers(&r, "403 origin");
    }
}

/// A DNS-rebinding page reaches the port with its own name in `Host`: it
/// gets neither the app nor `/webxdc.js` (which holds the bridge secret),
/// nor the bridge.
#[tokio::test]
async fn requests_for_another_host_are_refused() {
    let o = origin().await;
    let port = o.addr().port();
    let hosts = [
        format!("rebound.example:{port}"),
        format!("localhost:{port}"),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1:{}", port ^ 1),
    ];
    for path in ["/", "/webxdc.js", "/index.html", BRIDGE_PATH] {
        for host in &hosts {
            let r = raw_request(o.addr(), &format!("GET {path} HTTP/1.1\r\nHost: {host}")).await;
            assert_eq!(r.status, 421, "{path} for {host}");
            assert_security_headers(&r, path);
            assert!(
                !String::from_utf8_lossy(&r.body).contains(o.secret()),
                "{path}: the secret is not given away"
            );
        }
    }
    // The origin's own name still works.
    let r = get(o.addr(), "/webxdc.js").await;
    assert_eq!(r.status, 200);
}
