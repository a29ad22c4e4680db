//! The default transport: STARTTLS with certificate verification. Runs in
//! its own test binary because it changes `SSL_CERT_FILE` for the process.

mod common;

use std::time::Duration;

use common::*;
use webxdc_realtime_xmpp::{Client, Config, ConnectError};
use xmpp_test_server::{Options, TestServer};

#[tokio::test]
async fn starttls_verifies_the_certificate_and_then_carries_payloads() {
    init_tracing();
    let server = TestServer::start(Options {
        tls: true,
        ..Options::prosody()
    })
    .expect("start prosody with TLS");
    let ca = server.ca_file().expect("a throwaway CA").to_owned();
    let port = server.c2s_addr().port();
    let tls_config = |name: &str| {
        let (jid, password) = server.account(name).unwrap();
        Config::new(jid.parse().unwrap(), password)
            .with_server("127.0.0.1", port)
            .with_connect_timeout(Duration::from_secs(5))
    };

    // Without the test CA among the trusted roots the server's certificate
    // is refused: no silent fallback to an unverified connection.
    std::env::set_var("SSL_CERT_FILE", "/nonexistent-ca.pem");
    let err = Client::connect(tls_config("mallory")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");

    // The server requires TLS: the plaintext opt-in cannot log in either.
    let (jid, password) = server.account("plain").unwrap();
    let plain = Client::connect(
        Config::new(jid.parse().unwrap(), password)
            .danger_plaintext_loopback_only(server.c2s_addr())
            .with_connect_timeout(Duration::from_secs(3)),
    )
    .await;
    assert!(
        plain.is_err(),
        "plaintext login to a TLS-only server succeeded"
    );

    // With the CA trusted (as a deployment's system roots would be), TLS works.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let a = Client::connect(tls_config("alice"))
        .await
        .expect("alice over TLS");
    let b = Client::connect(tls_config("bob"))
        .await
        .expect("bob over TLS");
    let r = room(&server, "tls");
    let ca_ch = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca_ch, &mut [&mut cb]).await;
    ca_ch.send(b"encrypted hop").await.unwrap();
    assert_eq!(next_payload(&mut cb).await.data, b"encrypted hop");
}
