//! A sender that outruns the server: nothing may be lost without a word.
//! Every payload is either received or reported (as `Delivery::Lagged` on
//! the receiving channel), on both servers.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio::time::timeout;
use webxdc_realtime_xmpp::Delivery;
use xmpp_test_server::{Options, ServerKind, TestServer};

/// Enough bytes to fill every socket buffer and queue between the sender
/// and the server several times over (the room reflects each payload back
/// to its sender too).
const PAYLOADS: u32 = 3000;
const SIZE: usize = 16 * 1024;

async fn flood(kind: ServerKind) {
    init_tracing();
    let server = TestServer::start(Options::new(kind)).expect("server");
    let r = room(&server, "flood");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca, &mut [&mut cb]).await;

    let reader = tokio::spawn(async move {
        let (mut received, mut reported) = (0u64, 0u64);
        let mut last = None;
        // Ends at the last payload, or when nothing arrives for a long
        // while (then the count tells what was lost).
        while let Ok(Some(item)) = timeout(Duration::from_secs(30), cb.next()).await {
            match item {
                Delivery::Payload(p) => {
                    let n = u32::from_be_bytes(p.data[..4].try_into().unwrap());
                    if let Some(prev) = last {
                        assert!(n > prev, "out of order: {n} after {prev}");
                    }
                    last = Some(n);
                    received += 1;
                    if n == PAYLOADS - 1 {
                        break;
                    }
                }
                Delivery::Lagged { dropped } => reported += dropped,
                other => panic!("unexpected {other:?}"),
            }
        }
        (received, reported)
    });
    let mut data = vec![0u8; SIZE];
    let sending = async {
        for n in 0..PAYLOADS {
            data[..4].copy_from_slice(&n.to_be_bytes());
            ca.send(&data).await.expect("send");
        }
    };
    // A hang guard only: a healthy run takes seconds.
    timeout(Duration::from_secs(180), sending)
        .await
        .expect("the sender stalled");
    let (received, reported) = reader.await.unwrap();
    println!("{kind:?}: sent {PAYLOADS}, received {received}, reported {reported}");
    assert_eq!(
        u64::from(PAYLOADS),
        received + reported,
        "lost without a word"
    );
}

#[tokio::test]
async fn prosody_flood_loses_nothing_without_a_word() {
    flood(ServerKind::Prosody).await;
}

#[tokio::test]
async fn ejabberd_flood_loses_nothing_without_a_word() {
    flood(ServerKind::Ejabberd).await;
}
