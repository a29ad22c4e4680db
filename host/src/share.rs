//! Sharing an app into the chat, and opening an app someone else shared.
//!
//! An app instance is born when someone shares the `.xdc` into the chat:
//! the file is uploaded with HTTP file upload (XEP-0363) and its GET URL
//! is sent as a file message whose `<thread>` is the instance id (the
//! library's [`GroupChat::share_app`], in Cheogram's shape: see
//! `docs/wire-format.md`, "Sharing an app"). [`share`] does all of it for
//! the bytes of a `.xdc`; [`open`] downloads a shared app and loads it, so
//! that a Cheogram user and a user of this host meet in one instance.
//!
//! HTTP goes through hyper-util's client over TLS (rustls with the ring
//! provider, hyper-rustls' connector): an `https://` server's certificate
//! is checked against the system's trusted roots, loaded with
//! `rustls-native-certs` for every request (the same roots, and the same
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` overrides, as the library's XMPP
//! connection), for the URL's host name; there is no way to skip the check.
//! A refused certificate is [`ShareError::Certificate`], another failed
//! handshake [`ShareError::Tls`].
//! Plain `http://` is taken only when the URL's host is a loopback address
//! (`127.0.0.0/8`, `::1`, `localhost`), as a test server's is: to any other
//! host it is refused with [`ShareError::Cleartext`] before connecting, as
//! a slot's `Authorization` header or the app itself must not cross a
//! network in the clear. An encrypted (`aesgcm://`, OMEMO) file is refused
//! with [`ShareError::Encrypted`]. Nothing is pretended: a share either
//! went out with a URL that was PUT successfully, or fails with a typed
//! error.
//!
//! Everything is bounded: each XMPP exchange and each HTTP request has a
//! timeout ([`XMPP_TIMEOUT`], [`CONNECT_TIMEOUT`], [`RESPONSE_TIMEOUT`],
//! [`IDLE_TIMEOUT`], [`DOWNLOAD_TIMEOUT`]), and a download stops reading as
//! soon as it passes the loader's bound on a `.xdc` file's size (twice
//! [`Limits::max_total`], as [`App::load_with`] refuses a larger file), so
//! a server cannot make the host hold more than that in memory.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use webxdc_realtime_xmpp::{Client, GroupChat, UpdateError, UploadError};

pub use webxdc_realtime_xmpp::SharedApp;

use crate::loader::{App, Limits, LoadError};

/// The media type of a shared `.xdc` (the one Cheogram shows as an app).
pub const MEDIA_TYPE: &str = "application/xdc+zip";
/// Most time for one XMPP exchange (finding the upload service, a slot).
pub const XMPP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most time to connect to the HTTP server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time from the start of an HTTP request until the response's head
/// (for the upload, sending the file is within it).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// Most time a download may go without receiving anything.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most time a whole download may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an app could not be shared or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The server offers no HTTP file upload (XEP-0363): an app cannot be
    /// shared there (run it with an agreed instance id instead).
    #[error("the server offers no HTTP file upload (XEP-0363), so the app cannot be shared there")]
    NoUploadService,
    /// Finding the upload service or getting a slot failed.
    #[error("the upload service: {0}")]
    Upload(UploadError),
    /// The URL is plain `http://` to a host that is not a loopback
    /// address: refused before connecting, as the slot's headers and the
    /// app would cross the network in the clear.
    #[error(
        "refusing plain http:// to {host}: only https:// is used, except for a server on a \
         loopback address (127.0.0.0/8, ::1, localhost): {url}"
    )]
    Cleartext {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
    },
    /// There are no trusted root certificates to check an `https://`
    /// server against (none in the system's store, or none readable in
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    #[error(
        "no trusted root certificates to check {url} against (the system's store, or \
         SSL_CERT_FILE/SSL_CERT_DIR): {reason}"
    )]
    NoTrustedRoots {
        /// The URL.
        url: String,
        /// What loading the roots said.
        reason: String,
    },
    /// The `https://` server's certificate was refused: not signed by a
    /// trusted root (`UnknownIssuer`, `BadSignature`), not for the URL's
    /// host ("certificate not valid for name"), expired, or none at all.
    /// Nothing was sent.
    #[error(
        "HTTP {method} {url}: the server's certificate is refused (nothing was sent): {reason}"
    )]
    Certificate {
        /// `PUT` or `GET`.
        method: &'static str,
        /// The URL.
        url: String,
        /// What rustls said (`invalid peer certificate: UnknownIssuer`, …).
        reason: String,
    },
    /// The TLS handshake with an `https://` server failed for another
    /// reason (no common protocol version or cipher suite, a broken
    /// handshake).
    #[error("HTTP {method} {url}: TLS failed (nothing was sent): {reason}")]
    Tls {
        /// `PUT` or `GET`.
        method: &'static str,
        /// The URL.
        url: String,
        /// What rustls said.
        reason: String,
    },
    /// The URL is an encrypted upload (`aesgcm://`, as OMEMO clients
    /// send): not supported.
    #[error("encrypted (aesgcm) uploads are not supported by this host: {url}")]
    Encrypted {
        /// The URL.
        url: String,
    },
    /// The URL is not an `https://` (or loopback `http://`) URL with a
    /// host.
    #[error("{url:?} is not an https:// URL this host can fetch: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP exchange failed (connection refused, broken response, a
    /// slot header that cannot be sent).
    #[error("HTTP {method} {url} failed: {reason}")]
    Http {
        /// `PUT` or `GET`.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP server answered with a status other than success.
    #[error("HTTP {method} {url} answered {status}")]
    Status {
        /// `PUT` or `GET`.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// An exchange took longer than its timeout.
    #[error("{what} took longer than {after:?}")]
    Timeout {
        /// Which exchange.
        what: String,
        /// The timeout it passed.
        after: Duration,
    },
    /// The shared file is larger than the loader takes: the download
    /// stopped there.
    #[error("the app at {url} is larger than {limit} bytes: refused, not downloaded further")]
    TooLarge {
        /// The URL.
        url: String,
        /// The bound it passed.
        limit: u64,
    },
    /// The downloaded file's SHA-256 is not the one its share gives.
    #[error("the file at {url} is not the one that was shared (its SHA-256 differs): refused")]
    HashMismatch {
        /// The URL.
        url: String,
    },
    /// The downloaded file's size is not the one its share gives.
    #[error("the file at {url} has {got} bytes, its share says {expected}: refused")]
    SizeMismatch {
        /// The URL.
        url: String,
        /// The size the share gives.
        expected: u64,
        /// The size downloaded.
        got: u64,
    },
    /// The share message could not be sent into the room.
    #[error("cannot send the share into the room: {0}")]
    Send(UpdateError),
    /// The downloaded file is not an app the loader accepts.
    #[error("the shared file is not an app this host can run: {0}")]
    Load(LoadError),
}

/// Uploads `app_bytes` (a `.xdc` file) as `name` (`board.xdc`) to the
/// server's upload service and shares it into `chat` with a fresh random
/// thread: the returned app's [`thread`](SharedApp::thread) is the new
/// instance id, its URL the upload's GET URL, with the file's size and
/// SHA-256 (Cheogram needs the hash to show the app).
///
/// The share is only sent once the PUT has succeeded. Every member,
/// `client` included, sees it among the client's events as
/// `EngineEvent::AppShared`; the room's archive keeps it for later members
/// ([`GroupChat::shared_apps`]).
pub async fn share(
    client: &Client,
    chat: &GroupChat,
    app_bytes: &[u8],
    name: &str,
) -> Result<SharedApp, ShareError> {
    let service = within("finding the upload service", client.upload_service())
        .await?
        .map_err(upload_error)?
        .ok_or(ShareError::NoUploadService)?;
    let size = app_bytes.len() as u64;
    let slot = within(
        "asking for an upload slot",
        client.request_upload_slot(&service, name, size, Some(MEDIA_TYPE)),
    )
    .await?
    .map_err(upload_error)?;
    put(&slot.put_url, &slot.put_headers, app_bytes).await?;
    let app = SharedApp {
        thread: new_instance_id(),
        url: slot.get_url,
        name: Some(name.to_owned()),
        size: Some(size),
        media_type: Some(MEDIA_TYPE.to_owned()),
        sha256: Some(Sha256::digest(app_bytes).to_vec()),
    };
    chat.share_app(&app).await.map_err(ShareError::Send)?;
    Ok(app)
}

/// Downloads the app `shared` and loads it with `limits`: the download
/// stops as soon as it passes the largest `.xdc` the loader takes (twice
/// [`Limits::max_total`]), and the file must have the SHA-256 and size the
/// share gives, when it gives them.
pub async fn open(shared: &SharedApp, limits: Limits) -> Result<App, ShareError> {
    let bytes = download(shared, limits).await?;
    let fallback = shared
        .name
        .as_deref()
        .map(|n| n.strip_suffix(".xdc").unwrap_or(n))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("app");
    App::from_xdc_bytes(&bytes, limits, fallback).map_err(ShareError::Load)
}

/// The checked bytes of the `.xdc` that `shared` points to (what [`open`]
/// loads).
pub async fn download(shared: &SharedApp, limits: Limits) -> Result<Vec<u8>, ShareError> {
    let url = &shared.url;
    let limit = limits.max_total.saturating_mul(2);
    if shared.size.is_some_and(|size| size > limit) {
        checked_url(url)?;
        return Err(ShareError::TooLarge {
            url: url.clone(),
            limit,
        });
    }
    let bytes = get(url, limit).await?;
    if let Some(want) = &shared.sha256 {
        if Sha256::digest(&bytes).as_slice() != want.as_slice() {
            return Err(ShareError::HashMismatch { url: url.clone() });
        }
    }
    if let Some(expected) = shared.size.filter(|s| *s != bytes.len() as u64) {
        return Err(ShareError::SizeMismatch {
            url: url.clone(),
            expected,
            got: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// A fresh random instance id: a version 4 UUID, as Cheogram's threads.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn upload_error(e: UploadError) -> ShareError {
    match e {
        UploadError::NoService => ShareError::NoUploadService,
        other => ShareError::Upload(other),
    }
}

/// `f` within [`XMPP_TIMEOUT`].
async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, ShareError> {
    tokio::time::timeout(XMPP_TIMEOUT, f)
        .await
        .map_err(|_| ShareError::Timeout {
            what: what.to_owned(),
            after: XMPP_TIMEOUT,
        })
}

/// `url` if this host fetches it: `https://` with a host, or `http://` to
/// a loopback host; the typed refusal of anything else (`aesgcm://`, plain
/// `http://` to another host).
fn checked_url(url: &str) -> Result<Uri, ShareError> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let bad = |reason: &str| ShareError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    match scheme.as_str() {
        "http" | "https" => {}
        "aesgcm" => {
            return Err(ShareError::Encrypted {
                url: url.to_owned(),
            })
        }
        _ => {
            return Err(bad(
                "only https:// (and http:// to a loopback address) is supported",
            ))
        }
    }
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if scheme == "http" && !is_loopback(host) {
        return Err(ShareError::Cleartext {
            url: url.to_owned(),
            host: host.to_owned(),
        });
    }
    Ok(uri)
}

/// Whether `host` (a URI's host: an IPv6 address in brackets) is
/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`).
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

type Https = HttpsConnector<HttpConnector>;

/// A client for `uri`: for `https://`, TLS with the ring provider and the
/// system's trusted roots (loaded now, so `SSL_CERT_FILE` is read as the
/// library's XMPP connection reads it); for `http://` (loopback only, see
/// [`checked_url`]) no roots are needed.
fn http_client(
    method: &'static str,
    uri: &Uri,
    url: &str,
) -> Result<HttpClient<Https, Full<Bytes>>, ShareError> {
    let mut roots = rustls::RootCertStore::empty();
    if uri.scheme() == Some(&hyper::http::uri::Scheme::HTTPS) {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let reason = if found.errors.is_empty() {
                "none found".to_owned()
            } else {
                found
                    .errors
                    .iter()
                    .map(|e| reason(e))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(ShareError::NoTrustedRoots {
                url: url.to_owned(),
                reason,
            });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ShareError::Tls {
            method,
            url: url.to_owned(),
            reason: format!("the TLS configuration: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HttpClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector))
}

/// The error of a failed request: [`ShareError::Certificate`] or
/// [`ShareError::Tls`] when rustls refused (somewhere in its sources, boxed
/// in `io::Error`s), else [`ShareError::Http`].
fn request_error(
    method: &'static str,
    url: &str,
    e: &(dyn std::error::Error + 'static),
) -> ShareError {
    fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        // io::Error's source() skips the error it wraps: look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(t) = tls_error(inner) {
                return Some(t);
            }
        }
        e.source().and_then(tls_error)
    }
    match tls_error(e) {
        Some(
            t @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::InvalidCertRevocationList(_)),
        ) => ShareError::Certificate {
            method,
            url: url.to_owned(),
            reason: t.to_string(),
        },
        Some(t) => ShareError::Tls {
            method,
            url: url.to_owned(),
            reason: t.to_string(),
        },
        None => ShareError::Http {
            method,
            url: url.to_owned(),
            reason: reason(e),
        },
    }
}

/// An error with its sources, for a person to read.
fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// PUTs `body` to `url` with the slot's headers (only `Authorization`,
/// `Cookie` and `Expires`, as XEP-0363 allows and Cheogram passes on).
async fn put(url: &str, headers: &[(String, String)], body: &[u8]) -> Result<(), ShareError> {
    let uri = checked_url(url)?;
    let client = http_client("PUT", &uri, url)?;
    let http_err = |reason: String| ShareError::Http {
        method: "PUT",
        url: url.to_owned(),
        reason,
    };
    let mut request = Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header(CONTENT_TYPE, MEDIA_TYPE)
        .header(CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        if !["authorization", "cookie", "expires"].contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        let name = HeaderName::try_from(name.as_str())
            .map_err(|e| http_err(format!("the slot's header {name:?}: {e}")))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|e| http_err(format!("the slot's header {name}: {e}")))?;
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| http_err(reason(&e)))?;
    let response = tokio::time::timeout(RESPONSE_TIMEOUT, client.request(request))
        .await
        .map_err(|_| ShareError::Timeout {
            what: format!("HTTP PUT {url}"),
            after: RESPONSE_TIMEOUT,
        })?
        .map_err(|e| request_error("PUT", url, &e))?;
    if !response.status().is_success() {
        return Err(ShareError::Status {
            method: "PUT",
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    Ok(())
}

/// GETs `url`, reading at most `limit` bytes of its body: one more is
/// [`ShareError::TooLarge`], and the rest is never read.
async fn get(url: &str, limit: u64) -> Result<Vec<u8>, ShareError> {
    let uri = checked_url(url)?;
    let client = http_client("GET", &uri, url)?;
    let http_err = |reason: String| ShareError::Http {
        method: "GET",
        url: url.to_owned(),
        reason,
    };
    let too_large = || ShareError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    let timeout = |after: Duration| ShareError::Timeout {
        what: format!("HTTP GET {url}"),
        after,
    };
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| http_err(reason(&e)))?;
    let deadline = tokio::time::Instant::now() + DOWNLOAD_TIMEOUT;
    let response = tokio::time::timeout(RESPONSE_TIMEOUT, client.request(request))
        .await
        .map_err(|_| timeout(RESPONSE_TIMEOUT))?
        .map_err(|e| request_error("GET", url, &e))?;
    if !response.status().is_success() {
        return Err(ShareError::Status {
            method: "GET",
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // Never trust the announced length for more than a small start.
    let mut data = Vec::with_capacity(announced.unwrap_or(0).min(1 << 20) as usize);
    let mut body = response.into_body();
    loop {
        let idle = tokio::time::Instant::now() + IDLE_TIMEOUT;
        let (until, after) = if idle < deadline {
            (idle, IDLE_TIMEOUT)
        } else {
            (deadline, DOWNLOAD_TIMEOUT)
        };
        let frame = tokio::time::timeout_at(until, body.frame())
            .await
            .map_err(|_| timeout(after))?;
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|e| http_err(reason(&e)))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if data.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_plain_http_only_to_loopback() {
        for ok in [
            "https://upload.example.org/f/a.xdc",
            "HTTPS://upload.example.org:8443/f/a.xdc",
            "https://127.0.0.1/f/a.xdc",
            "http://127.0.0.1:5280/f/a.xdc",
            "http://127.3.4.5/f/a.xdc",
            "http://localhost:5280/f/a.xdc",
            "HTTP://LocalHost/f/a.xdc",
            "http://[::1]:5280/f/a.xdc",
        ] {
            assert!(checked_url(ok).is_ok(), "{ok}");
        }
        for (cleartext, host) in [
            ("http://upload.example.org/f/a.xdc", "upload.example.org"),
            (
                "HTTP://upload.example.org:5280/f/a.xdc",
                "upload.example.org",
            ),
            ("http://192.168.1.2:5280/f/a.xdc", "192.168.1.2"),
            ("http://10.0.0.1/f/a.xdc", "10.0.0.1"),
            ("http://128.0.0.1/f/a.xdc", "128.0.0.1"),
            ("http://[::2]/f/a.xdc", "[::2]"),
            ("http://[::ffff:127.0.0.1]/f/a.xdc", "[::ffff:127.0.0.1]"),
            (
                "http://localhost.example.org/f/a.xdc",
                "localhost.example.org",
            ),
            ("http://foo.localhost/f/a.xdc", "foo.localhost"),
            (
                "http://127.0.0.1.example.org/f/a.xdc",
                "127.0.0.1.example.org",
            ),
            ("http://0.0.0.0/f/a.xdc", "0.0.0.0"),
        ] {
            match checked_url(cleartext) {
                Err(ShareError::Cleartext { url, host: h }) => {
                    assert_eq!(url, cleartext);
                    assert_eq!(h, host);
                }
                other => panic!("{cleartext}: {other:?}"),
            }
        }
        let err = checked_url("http://upload.example.org/f/a.xdc").unwrap_err();
        assert!(err.to_string().contains("refusing plain http://"), "{err}");
        assert!(matches!(
            checked_url("aesgcm://upload.example.org/f/a.xdc#00ff"),
            Err(ShareError::Encrypted { .. })
        ));
        for bad in [
            "ftp://x/a.xdc",
            "a.xdc",
            "http:///a.xdc",
            "https:///a.xdc",
            "http://exa mple/a",
        ] {
            assert!(
                matches!(checked_url(bad), Err(ShareError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    /// The refusal comes before any connection: a PUT with a password in
    /// its headers to a non-loopback plain-http URL fails at once, and so
    /// does a download. (`0.0.0.0` is no loopback address, yet a
    /// connection to it would stay on this machine, should the check fail.)
    #[tokio::test]
    async fn plain_http_to_another_host_is_refused_before_connecting() {
        let url = "http://0.0.0.0:9/f/a.xdc";
        let headers = [("Authorization".to_owned(), "Basic c2VjcmV0".to_owned())];
        let err = put(url, &headers, b"app").await.unwrap_err();
        assert!(matches!(err, ShareError::Cleartext { .. }), "{err:?}");
        let err = get(url, 1 << 20).await.unwrap_err();
        assert!(matches!(err, ShareError::Cleartext { .. }), "{err:?}");
    }

    #[test]
    fn loopback_hosts() {
        for yes in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.255.0.9",
            "[::1]",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "",
            "[::]",
            "0.0.0.0",
            "1.2.3.4",
            "localhost.",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn instance_ids_are_fresh_uuids() {
        let (a, b) = (new_instance_id(), new_instance_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
    }
}
