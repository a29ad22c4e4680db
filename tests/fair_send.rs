//! The channels of one client take turns on its connection: a small
//! payload on one channel is not stuck behind a file that another channel
//! of the same client queued in full-size chunks, and each channel's own
//! payloads keep their order (the contract's per-sender order).
//!
//! Order, not time, is what these tests assert: the receiver looks at how
//! many chunks it had when the small payload arrived. Sent first come first
//! served, the small payload would arrive after the last chunk.

mod common;

use common::*;
use webxdc_realtime_xmpp::{Channel, Client, Delivery};
use xmpp_test_server::TestServer;

/// What apps built on `@webxdc/realtime` send files in.
const CHUNK: usize = 126_000;

/// Chunks queued before the small payload: fewer than the client's 64 send
/// slots, so that every one of them is queued when the small payload is
/// sent, and the small payload's own send does not wait.
const CHUNKS: usize = 48;

/// Chunk `seq`: its number, then bytes that depend on it.
fn chunk(seq: usize) -> Vec<u8> {
    let mut c: Vec<u8> = (0..CHUNK)
        .map(|i| ((i * 131 + seq * 7) % 251) as u8)
        .collect();
    c[..4].copy_from_slice(&(seq as u32).to_be_bytes());
    c
}

/// The payloads on `ch` that are in its queue now, without waiting.
fn take_queued(ch: &Channel) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(d) = ch.try_recv() {
        match d {
            Delivery::Payload(p) => got.push(p.data),
            Delivery::Connection(_) => continue,
            other => panic!("unexpected delivery {other:?}"),
        }
    }
    got
}

async fn alice_and_bob(server: &TestServer) -> ([Client; 2], [Channel; 4]) {
    let r = room(server, "fair");
    let alice = client(server, "alice").await;
    let bob = client(server, "bob").await;
    let a_bulk = join(&alice, &r, "bulk").await;
    let a_small = join(&alice, &r, "small").await;
    let mut b_bulk = join(&bob, &r, "bulk").await;
    let mut b_small = join(&bob, &r, "small").await;
    barrier(&a_bulk, &mut [&mut b_bulk]).await;
    barrier(&a_small, &mut [&mut b_small]).await;
    ([alice, bob], [a_bulk, a_small, b_bulk, b_small])
}

async fn small_overtakes_queued_bulk(server: TestServer) {
    let (_clients, [a_bulk, a_small, mut b_bulk, mut b_small]) = alice_and_bob(&server).await;
    for seq in 0..CHUNKS {
        a_bulk.send(&chunk(seq)).await.expect("chunk queued");
    }
    a_small.send(b"small").await.expect("small payload queued");

    assert_eq!(next_payload(&mut b_small).await.data, b"small");
    // Every chunk Bob has by now is in his channel's queue (or was taken
    // from it); more may arrive while we look, which only counts against
    // the assertion.
    let mut chunks = take_queued(&b_bulk);
    let when_small_arrived = chunks.len();
    while chunks.len() < CHUNKS {
        chunks.push(next_payload(&mut b_bulk).await.data);
    }
    assert!(
        when_small_arrived < CHUNKS,
        "the small payload arrived after all {CHUNKS} chunks queued before it on another channel"
    );
    for (seq, c) in chunks.iter().enumerate() {
        assert!(
            *c == chunk(seq),
            "chunk {seq} arrived out of order or damaged"
        );
    }
    // Nothing else: the channels are quiet.
    assert!(take_queued(&b_bulk).is_empty() && take_queued(&b_small).is_empty());
}

/// Two channels of one client sending at once, each its own stream of
/// numbered payloads: each arrives complete and in its own order, and they
/// are interleaved (neither waits for the other to finish).
async fn two_busy_channels_keep_their_order(server: TestServer) {
    let (_clients, [a_bulk, a_small, mut b_bulk, mut b_small]) = alice_and_bob(&server).await;
    // Fewer small payloads than chunks: taking turns, the last small one
    // goes out about halfway through the chunks.
    const N: usize = 24;
    const M: usize = 8;
    let numbered = |seq: usize, size: usize| {
        let mut p = vec![(seq % 251) as u8; size];
        p[..4].copy_from_slice(&(seq as u32).to_be_bytes());
        p
    };
    let send_bulk = async {
        for seq in 0..N {
            a_bulk
                .send(&numbered(seq, CHUNK))
                .await
                .expect("chunk queued");
        }
    };
    let send_small = async {
        for seq in 0..M {
            a_small
                .send(&numbered(seq, 64))
                .await
                .expect("small queued");
        }
    };
    tokio::join!(send_bulk, send_small);

    let mut smalls = Vec::new();
    let mut bulk_when_last_small = 0;
    let mut bulks = Vec::new();
    while smalls.len() < M {
        smalls.push(next_payload(&mut b_small).await.data);
        bulks.extend(take_queued(&b_bulk));
        bulk_when_last_small = bulks.len();
    }
    while bulks.len() < N {
        bulks.push(next_payload(&mut b_bulk).await.data);
    }
    for (seq, p) in smalls.iter().enumerate() {
        assert_eq!(*p, numbered(seq, 64), "small payload {seq}");
    }
    for (seq, p) in bulks.iter().enumerate() {
        assert!(
            *p == numbered(seq, CHUNK),
            "chunk {seq} out of order or damaged"
        );
    }
    assert!(
        bulk_when_last_small < N,
        "the small payloads arrived only after every chunk"
    );
}

#[tokio::test]
async fn prosody_small_payload_overtakes_queued_bulk() {
    small_overtakes_queued_bulk(prosody()).await;
}

#[tokio::test]
async fn ejabberd_small_payload_overtakes_queued_bulk() {
    small_overtakes_queued_bulk(ejabberd()).await;
}

#[tokio::test]
async fn prosody_two_busy_channels_keep_their_order() {
    two_busy_channels_keep_their_order(prosody()).await;
}
