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
//! HTTP here is plain `http://` only, through hyper-util's client: this
//! host has no TLS HTTP client yet, so an `https://` upload or download is
//! refused with [`ShareError::Https`], and an encrypted (`aesgcm://`,
//! OMEMO) file with [`ShareError::Encrypted`]. Nothing is pretended: a
//! share either went out with a URL that was PUT successfully, or fails
//! with a typed error.
//!
//! Everything is bounded: each XMPP exchange and each HTTP request has a
//! timeout ([`XMPP_TIMEOUT`], [`CONNECT_TIMEOUT`], [`RESPONSE_TIMEOUT`],
//! [`IDLE_TIMEOUT`], [`DOWNLOAD_TIMEOUT`]), and a download stops reading as
//! soon as it passes the loader's bound on a `.xdc` file's size (twice
//! [`Limits::max_total`], as [`App::load_with`] refuses a larger file), so
//! a server cannot make the host hold more than that in memory.

use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
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
    /// The URL is `https://`: this host has no TLS HTTP client yet.
    #[error("https uploads are not supported by this host yet (it has no TLS HTTP client): {url}")]
    Https {
        /// The URL.
        url: String,
    },
    /// The URL is an encrypted upload (`aesgcm://`, as OMEMO clients
    /// send): not supported.
    #[error("encrypted (aesgcm) uploads are not supported by this host: {url}")]
    Encrypted {
        /// The URL.
        url: String,
    },
    /// The URL is not a plain `http://` URL with a host.
    #[error("{url:?} is not an http:// URL this host can fetch: {reason}")]
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
        plain_http(url)?;
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

/// `url` if it is a plain `http://` URL with a host; the typed refusal of
/// `https://` and `aesgcm://` otherwise.
fn plain_http(url: &str) -> Result<Uri, ShareError> {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let bad = |reason: &str| ShareError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    match scheme.as_str() {
        "http" => {}
        "https" => {
            return Err(ShareError::Https {
                url: url.to_owned(),
            })
        }
        "aesgcm" => {
            return Err(ShareError::Encrypted {
                url: url.to_owned(),
            })
        }
        _ => return Err(bad("only http:// is supported")),
    }
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(uri)
}

fn http_client() -> HttpClient<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    HttpClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
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
    let uri = plain_http(url)?;
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
    let response = tokio::time::timeout(RESPONSE_TIMEOUT, http_client().request(request))
        .await
        .map_err(|_| ShareError::Timeout {
            what: format!("HTTP PUT {url}"),
            after: RESPONSE_TIMEOUT,
        })?
        .map_err(|e| http_err(reason(&e)))?;
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
    let uri = plain_http(url)?;
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
    let client = http_client();
    let deadline = tokio::time::Instant::now() + DOWNLOAD_TIMEOUT;
    let response = tokio::time::timeout(RESPONSE_TIMEOUT, client.request(request))
        .await
        .map_err(|_| timeout(RESPONSE_TIMEOUT))?
        .map_err(|e| http_err(reason(&e)))?;
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
    fn only_plain_http_urls_are_fetched() {
        assert!(plain_http("http://127.0.0.1:5280/f/a.xdc").is_ok());
        assert!(matches!(
            plain_http("https://upload.example.org/f/a.xdc"),
            Err(ShareError::Https { .. })
        ));
        assert!(matches!(
            plain_http("HTTPS://upload.example.org/f/a.xdc"),
            Err(ShareError::Https { .. })
        ));
        assert!(matches!(
            plain_http("aesgcm://upload.example.org/f/a.xdc#00ff"),
            Err(ShareError::Encrypted { .. })
        ));
        for bad in [
            "ftp://x/a.xdc",
            "a.xdc",
            "http:///a.xdc",
            "http://exa mple/a",
        ] {
            assert!(
                matches!(plain_http(bad), Err(ShareError::BadUrl { .. })),
                "{bad}"
            );
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
