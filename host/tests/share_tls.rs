//! Sharing an app over HTTPS (`webxdc_host::share`), against a real
//! Prosody whose upload service speaks only HTTPS on its loopback port,
//! with a certificate for `localhost` signed by a throwaway CA
//! (`Options::http_upload_tls`; slot URLs are `https://localhost:PORT/…`).
//!
//! The trusted roots are the system's, read by `rustls-native-certs` as the
//! library's XMPP connection reads them, so this test trusts the throwaway
//! CA through `SSL_CERT_FILE`; it runs in a test binary of its own because
//! that variable is the whole process's. With the CA trusted, alice's host
//! uploads and shares the board app and bob's host opens it, file for
//! file. With another throwaway CA trusted instead (same name, another
//! key), the same download (and an upload) fails with
//! `ShareError::Certificate` at once; with the right CA but the URL naming
//! `127.0.0.1`, which the certificate is not for, it fails too (the name is
//! checked);
//! with no roots at all it is `ShareError::NoTrustedRoots`. Trusted again,
//! the same share opens again: the roots made the difference.

#[path = "common/browser.rs"]
#[allow(unused_imports)]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Chat;
use sha2::{Digest, Sha256};
use webxdc_host::share::{self, ShareError};
use webxdc_host::{App, Limits};
use xmpp_test_server::{Options, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn board_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("apps/board")
}

fn assert_same_files(a: &App, b: &App) {
    assert_eq!(a.name(), b.name());
    assert_eq!(a.paths(), b.paths());
    for path in a.paths() {
        assert_eq!(a.file(path), b.file(path), "{path}");
    }
}

fn trust(ca: &Path) {
    std::env::set_var("SSL_CERT_FILE", ca);
}

#[tokio::test]
async fn an_app_is_shared_and_opened_over_https_only_with_the_servers_ca_trusted() {
    // Only SSL_CERT_FILE decides what is trusted here.
    std::env::remove_var("SSL_CERT_DIR");
    let chat = Chat::start_with(Options {
        http_upload_tls: true,
        ..Options::prosody()
    })
    .await;
    let ca = chat.server.ca_file().expect("a throwaway CA").to_owned();
    let base = chat.server.http_upload_url().unwrap();
    let port = chat.server.http_upload().unwrap().1.port();
    assert_eq!(base, format!("https://localhost:{port}/"));
    // Another throwaway CA: valid roots, just not the ones that signed the
    // upload server's certificate. (Both CAs have the same name, so rustls
    // finds the wrong one as the issuer and says `BadSignature`.)
    let other = tokio::task::spawn_blocking(|| {
        TestServer::start(Options {
            tls: true,
            ..Options::prosody()
        })
    })
    .await
    .unwrap()
    .expect("a second server, for its CA");
    let other_ca = other.ca_file().unwrap().to_owned();

    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let dir = tempfile::tempdir().unwrap();
    let original = webxdc_host::loader::pack_dir(&board_dir(), &dir.path().join("b.xdc")).unwrap();
    let bytes = std::fs::read(dir.path().join("b.xdc")).unwrap();

    // An upload while the server's CA is not trusted: refused by TLS.
    trust(&other_ca);
    let err = tokio::time::timeout(
        WAIT,
        share::share(&alice.client, &alice.chat, &bytes, "board.xdc"),
    )
    .await
    .expect("refused in time")
    .unwrap_err();
    assert!(
        matches!(&err, ShareError::Certificate { method: "PUT", reason, .. }
            if reason.contains("invalid peer certificate")),
        "{err:?}"
    );

    // Trusted: the PUT goes over HTTPS and bob opens the same files.
    trust(&ca);
    let sent = tokio::time::timeout(
        WAIT,
        share::share(&alice.client, &alice.chat, &bytes, "board.xdc"),
    )
    .await
    .expect("shared in time")
    .expect("shared over https");
    assert!(sent.url.starts_with(&base), "{}", sent.url);
    assert_eq!(
        sent.sha256.as_deref(),
        Some(Sha256::digest(&bytes).as_slice())
    );
    let opened = tokio::time::timeout(WAIT, share::open(&sent, Limits::default()))
        .await
        .expect("opened in time")
        .expect("opened over https");
    assert_same_files(&opened, &original);
    drop(bob);

    // The same download with another CA trusted: a typed certificate
    // error, at once (no hang, no panic).
    trust(&other_ca);
    let err = tokio::time::timeout(WAIT, share::open(&sent, Limits::default()))
        .await
        .expect("refused in time")
        .unwrap_err();
    match &err {
        ShareError::Certificate {
            method: "GET",
            url,
            reason,
        } => {
            assert_eq!(url, &sent.url);
            assert!(reason.contains("invalid peer certificate"), "{reason}");
            assert!(reason.contains("BadSignature"), "{reason}");
        }
        other => panic!("not a TLS error: {other:?}"),
    }

    // The right CA, but a URL naming 127.0.0.1: the certificate is for
    // localhost only, and the name is checked.
    trust(&ca);
    let mut by_ip = sent.clone();
    by_ip.url = sent
        .url
        .replace(&base, &format!("https://127.0.0.1:{port}/"));
    assert_ne!(by_ip.url, sent.url);
    let err = tokio::time::timeout(WAIT, share::open(&by_ip, Limits::default()))
        .await
        .expect("refused in time")
        .unwrap_err();
    assert!(
        matches!(&err, ShareError::Certificate { reason, .. } if reason.contains("not valid for name \"127.0.0.1\"")),
        "{err:?}"
    );

    // No roots at all: said so, nothing fetched.
    trust(Path::new("/nonexistent-ca.pem"));
    let err = share::open(&sent, Limits::default()).await.unwrap_err();
    assert!(matches!(err, ShareError::NoTrustedRoots { .. }), "{err:?}");

    // Trusted again: the same share opens again.
    trust(&ca);
    let again = tokio::time::timeout(WAIT, share::open(&sent, Limits::default()))
        .await
        .expect("opened in time")
        .expect("opened over https again");
    assert_same_files(&again, &original);
    alice.client.shutdown().await;
}
