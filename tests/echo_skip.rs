//! The rooms' reflections of our own payloads are dropped before they are
//! parsed (`src/client/connector.rs`), against real Prosody and ejabberd:
//! both keep our message ids on the reflection, so every echo is emptied,
//! and nothing else is.
//!
//! Absence is shown by causality: the room hands stanzas to each occupant
//! in the order it processed them, so once the sender has read a peer's
//! answer to its last payload, the reflections of all its payloads have
//! reached it.

mod common;

use common::*;
use webxdc_realtime_xmpp::{Client, Config, MAX_PAYLOAD};
use xmpp_test_server::TestServer;

async fn echoes_are_skipped_and_every_payload_arrives(server: TestServer) {
    let r = room(&server, "echoes");
    let (jid, password) = server.account("alice").expect("create account");
    let device = |resource: &str| {
        Config::new(jid.parse().expect("account jid"), password.clone())
            .danger_plaintext_loopback_only(server.c2s_addr())
            .with_resource(resource)
    };
    let alice = Client::connect(device("phone")).await.expect("connects");
    // Alice's second device: its own nick, so her payloads are not its echo.
    let laptop = Client::connect(device("laptop"))
        .await
        .expect("second device connects");
    let bob = client(&server, "bob").await;
    let mut a = join(&alice, &r, "t").await;
    let mut a2 = join(&laptop, &r, "t").await;
    let mut b = join(&bob, &r, "t").await;
    // Bob's markers reach both of Alice's devices: they are in the room,
    // and Alice has sent nothing yet.
    barrier(&b, &mut [&mut a, &mut a2]).await;
    assert_eq!(alice.echoes_skipped(), 0);

    let mut sent = Vec::new();
    for i in 0..20u8 {
        sent.push(vec![i; 1 + usize::from(i) * 97]);
    }
    sent.push(vec![b'x'; MAX_PAYLOAD]);
    for p in &sent {
        a.send(p).await.expect("sent");
    }
    for p in &sent {
        assert_eq!(&next_payload(&mut b).await.data, p, "bob");
        assert_eq!(&next_payload(&mut a2).await.data, p, "alice's laptop");
    }
    b.send(b"answer").await.expect("answer sent");
    assert_eq!(
        next_payload(&mut a).await.data,
        b"answer",
        "alice received her own echo"
    );
    assert_eq!(
        alice.echoes_skipped(),
        sent.len() as u64,
        "every reflection of alice's payloads was emptied before parsing"
    );
    // The laptop read Alice's payloads in full: none was its own.
    assert_eq!(laptop.echoes_skipped(), 0);

    // The stream is intact after the emptied echoes (XEP-0198 counted each
    // as the stanza it was): payloads still flow both ways.
    a.send(b"still here").await.expect("sent");
    assert_eq!(next_payload(&mut b).await.data, b"still here");
    assert_eq!(next_payload(&mut a2).await.data, b"answer");
    assert_eq!(next_payload(&mut a2).await.data, b"still here");
    for c in [alice, laptop, bob] {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn prosody_echoes_are_skipped() {
    echoes_are_skipped_and_every_payload_arrives(prosody()).await;
}

#[tokio::test]
async fn ejabberd_echoes_are_skipped() {
    echoes_are_skipped_and_every_payload_arrives(ejabberd()).await;
}
