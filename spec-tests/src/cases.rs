//! The cases: one public async function per checked behaviour.
//!
//! Each case takes a fresh harness, builds what it needs, and returns an
//! [`Outcome`]. Cases synchronise by events, never by sleeping (see
//! [`crate::sync`]). [`all`] lists every case for the runner and the
//! [`conformance_tests!`](crate::conformance_tests) macro.

use std::future::Future;
use std::pin::Pin;

use crate::harness::{Channel, Harness, JoinFailure, Received, SendFailure};
use crate::sync::{
    barrier, barrier_within, connect_pair, expect_nothing, expect_payload, next_payload, send,
    show, show_received, PATIENCE, QUIET, RESTART_PATIENCE,
};
use crate::Outcome;

/// The largest payload the webxdc API allows.
pub const MAX_PAYLOAD: usize = 128_000;

/// The app instance name most cases use.
const APP: &str = "app";

type Step<T = ()> = Result<T, String>;

/// Runs a case body and turns its result into an [`Outcome`].
async fn outcome(body: impl Future<Output = Step>) -> Outcome {
    match body.await {
        Ok(()) => Outcome::Pass,
        Err(reason) => Outcome::Fail(reason),
    }
}

/// Joins and insists on success.
async fn join<H: Harness>(
    h: &mut H,
    chat: &H::Chat,
    member: usize,
    instance: &str,
) -> Step<H::Channel> {
    match h.join(chat, member, instance).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(format!(
            "member {member} joining instance {instance:?} failed: {e:?}"
        )),
        Err(e) => Err(format!("harness: {e}")),
    }
}

async fn new_chat<H: Harness>(h: &mut H, members: usize) -> Step<H::Chat> {
    h.new_chat(members)
        .await
        .map_err(|e| format!("harness: creating a chat of {members}: {e}"))
}

/// A chat of `n` members, all joined to [`APP`].
async fn joined<H: Harness>(h: &mut H, n: usize) -> Step<(H::Chat, Vec<H::Channel>)> {
    let chat = new_chat(h, n).await?;
    let mut chans = Vec::with_capacity(n);
    for m in 0..n {
        chans.push(join(h, &chat, m, APP).await?);
    }
    Ok((chat, chans))
}

/// Barriers from every channel to every other one.
async fn connect_all<C: Channel>(chans: &mut [C]) -> Step {
    for i in 0..chans.len() {
        let (before, rest) = chans.split_at_mut(i);
        let (sender, after) = rest.split_at_mut(1);
        let mut receivers: Vec<&mut C> = before.iter_mut().chain(after.iter_mut()).collect();
        barrier(&mut sender[0], &mut receivers).await?;
    }
    Ok(())
}

/// Two distinct mutable elements of a slice.
fn pair<C>(v: &mut [C], i: usize, j: usize) -> (&mut C, &mut C) {
    assert!(i < j, "pair({i}, {j})");
    let (a, b) = v.split_at_mut(j);
    (&mut a[i], &mut b[0])
}

fn skip(reason: &str) -> Outcome {
    Outcome::Skipped(reason.to_owned())
}

// ----- rule 5: delivery to every other peer -----

/// Two peers: each one's payload reaches the other, in both directions.
pub async fn two_peers_both_directions<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        send(a, b"hello from 0", "member 0").await?;
        expect_payload(b, b"hello from 0", "member 1").await?;
        send(b, b"hello from 1", "member 1").await?;
        expect_payload(a, b"hello from 1", "member 0").await
    })
    .await
}

/// Three peers: each payload reaches both others.
pub async fn three_peers_all_receive<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 3).await?;
        connect_all(&mut ch).await?;
        for s in 0..3 {
            let msg = format!("from {s}");
            send(&mut ch[s], msg.as_bytes(), &format!("member {s}")).await?;
            for (r, c) in ch.iter_mut().enumerate() {
                if r != s {
                    expect_payload(c, msg.as_bytes(), &format!("member {r}")).await?;
                }
            }
        }
        Ok(())
    })
    .await
}

/// A sender never receives its own payload. Proven by causality: once the
/// other peer received `x` and answered `y`, `y` must be the first thing
/// the sender receives.
pub async fn no_self_echo<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        for i in 0..3 {
            let x = format!("x{i}");
            send(a, x.as_bytes(), "member 0").await?;
            expect_payload(b, x.as_bytes(), "member 1").await?;
        }
        send(b, b"answer", "member 1").await?;
        expect_payload(
            a,
            b"answer",
            "member 0 (an echo of its own payload came first)",
        )
        .await
    })
    .await
}

/// Another device of the same participant is a peer like any other: it
/// receives the member's payloads and its own reach the member.
/// Capability `multi_device`.
pub async fn other_device_of_same_member_receives<H: Harness>(mut h: H) -> Outcome {
    if !h.capabilities().multi_device {
        return skip("capability multi_device: the backend has no second device per participant");
    }
    outcome(async {
        let chat = new_chat(&mut h, 2).await?;
        let dev = h
            .add_device(&chat, 0)
            .await
            .map_err(|e| format!("harness: adding a device: {e}"))?;
        let mut ch = vec![
            join(&mut h, &chat, 0, APP).await?,
            join(&mut h, &chat, 1, APP).await?,
            join(&mut h, &chat, dev, APP).await?,
        ];
        connect_all(&mut ch).await?;
        send(&mut ch[0], b"from the first device", "member 0").await?;
        expect_payload(&mut ch[2], b"from the first device", "the second device").await?;
        expect_payload(&mut ch[1], b"from the first device", "member 1").await?;
        send(&mut ch[2], b"from the second device", "the second device").await?;
        expect_payload(
            &mut ch[0],
            b"from the second device",
            "the first device (its own echo came first?)",
        )
        .await?;
        expect_payload(&mut ch[1], b"from the second device", "member 1").await
    })
    .await
}

// ----- rule 2 and 3: payload bytes and size -----

/// Payloads are binary-safe: all 256 byte values arrive exactly.
pub async fn exact_bytes_all_256_values<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        let up: Vec<u8> = (0..=255u8).collect();
        let down: Vec<u8> = (0..=255u8).rev().collect();
        // Bytes that trip up text encodings: NUL, lone UTF-8 continuation
        // and lead bytes, an invalid sequence, CR LF, XML specials.
        let tricky: Vec<u8> = vec![0, 0x80, 0xbf, 0xc0, 0xff, 0xfe, b'\r', b'\n', b'<', b'&', 0];
        for p in [&up, &down, &tricky] {
            send(a, p, "member 0").await?;
            expect_payload(b, p, "member 1").await?;
        }
        Ok(())
    })
    .await
}

/// An empty payload is delivered as an empty payload.
pub async fn empty_payload<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        send(a, b"", "member 0").await?;
        send(a, b"after the empty one", "member 0").await?;
        expect_payload(b, b"", "member 1").await?;
        expect_payload(b, b"after the empty one", "member 1").await
    })
    .await
}

/// A payload of exactly 128000 bytes goes through, both directions.
pub async fn max_size_payload_round_trip<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        let big: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i * 7 % 256) as u8).collect();
        send(a, &big, "member 0").await?;
        expect_payload(b, &big, "member 1").await?;
        let back: Vec<u8> = big.iter().rev().copied().collect();
        send(b, &back, "member 1").await?;
        expect_payload(a, &back, "member 0").await
    })
    .await
}

/// 128001 bytes are refused with `TooLarge`; nothing of it arrives and the
/// channel keeps working.
pub async fn oversize_rejected_channel_still_works<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        match a.send(&vec![7u8; MAX_PAYLOAD + 1]).await {
            Err(SendFailure::TooLarge) => {}
            other => {
                return Err(format!(
                    "sending {} bytes gave {other:?}, expected Err(TooLarge)",
                    MAX_PAYLOAD + 1
                ))
            }
        }
        // By causality: the marker is the first thing to arrive, so the
        // oversize payload did not.
        send(a, b"still works", "member 0").await?;
        expect_payload(b, b"still works", "member 1").await?;
        send(b, b"and back", "member 1").await?;
        expect_payload(a, b"and back", "member 0").await
    })
    .await
}

// ----- rule 8: order, duplicates -----

/// 200 payloads from one sender arrive in the order they were sent.
pub async fn per_sender_order_200<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        for i in 0..200u32 {
            send(a, &i.to_be_bytes(), "member 0").await?;
        }
        for i in 0..200u32 {
            expect_payload(b, &i.to_be_bytes(), &format!("member 1, payload #{i}")).await?;
        }
        Ok(())
    })
    .await
}

/// Two identical payloads are two deliveries (no deduplication by content).
pub async fn identical_payloads_both_delivered<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        send(a, b"same", "member 0").await?;
        send(a, b"same", "member 0").await?;
        send(a, b"end", "member 0").await?;
        expect_payload(b, b"same", "member 1, first copy").await?;
        expect_payload(b, b"same", "member 1, second copy").await?;
        expect_payload(b, b"end", "member 1").await
    })
    .await
}

/// A peer that joins while another is sending gets no payload twice and
/// none out of order (it may miss the ones sent before its join completed).
pub async fn no_duplicates_when_send_races_join<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let chat = new_chat(&mut h, 2).await?;
        let mut a = join(&mut h, &chat, 0, APP).await?;
        let seq = |i: u32| {
            let mut p = b"seq".to_vec();
            p.extend_from_slice(&i.to_be_bytes());
            p
        };
        // The join runs while member 0 sends.
        let (joined, sent) = futures::join!(h.join(&chat, 1, APP), async {
            for i in 0..100u32 {
                send(&mut a, &seq(i), "member 0").await?;
                tokio::task::yield_now().await;
            }
            Ok::<(), String>(())
        });
        sent?;
        let mut b = match joined {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(format!("member 1 joining failed: {e:?}")),
            Err(e) => return Err(format!("harness: {e}")),
        };
        // Keep sending until member 1 receives something, then end with a
        // marker; everything in between must be strictly increasing.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut next = 100u32;
        let mut got: Vec<u32> = Vec::new();
        let decode = |d: &[u8]| -> Step<u32> {
            match d {
                [b's', b'e', b'q', rest @ ..] if rest.len() == 4 => {
                    Ok(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
                }
                other => Err(format!("member 1 got unexpected payload {}", show(other))),
            }
        };
        while got.is_empty() {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("member 1 received nothing within {PATIENCE:?}"));
            }
            send(&mut a, &seq(next), "member 0").await?;
            next += 1;
            match b.recv(std::time::Duration::from_millis(200)).await {
                Received::Payload(d) => got.push(decode(&d)?),
                Received::Timeout => {}
                other => return Err(format!("member 1 got {}", show_received(&other))),
            }
        }
        send(&mut a, b"end", "member 0").await?;
        loop {
            let d = next_payload(&mut b, "member 1").await?;
            if d == b"end" {
                break;
            }
            got.push(decode(&d)?);
        }
        if let Some(w) = got.windows(2).find(|w| w[1] <= w[0]) {
            return Err(format!(
                "member 1 received seq {} after seq {} (duplicate or reordered); all: {got:?}",
                w[1], w[0]
            ));
        }
        Ok(())
    })
    .await
}

// ----- rule 6: isolation -----

/// Two app instances in one chat never see each other's payloads.
pub async fn isolation_between_instances_in_one_chat<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let chat = new_chat(&mut h, 2).await?;
        let mut a1 = join(&mut h, &chat, 0, "instance-one").await?;
        let mut a2 = join(&mut h, &chat, 0, "instance-two").await?;
        let mut b1 = join(&mut h, &chat, 1, "instance-one").await?;
        let mut b2 = join(&mut h, &chat, 1, "instance-two").await?;
        barrier(&mut a1, &mut [&mut b1]).await?;
        barrier(&mut a2, &mut [&mut b2]).await?;
        send(&mut a1, b"for instance one", "member 0, instance one").await?;
        send(&mut a2, b"for instance two", "member 0, instance two").await?;
        // Causality where the transport orders across instances; the quiet
        // window where it may not.
        expect_payload(&mut b2, b"for instance two", "member 1, instance two").await?;
        expect_payload(&mut b1, b"for instance one", "member 1, instance one").await?;
        let (q1, q2) = futures::join!(
            expect_nothing(&mut b1, QUIET, "member 1, instance one"),
            expect_nothing(&mut b2, QUIET, "member 1, instance two"),
        );
        q1.and(q2)
    })
    .await
}

/// The same app instance id in two chats names two separate channels.
pub async fn isolation_between_chats_same_instance<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let one = new_chat(&mut h, 2).await?;
        let two = h
            .other_chat(&one)
            .await
            .map_err(|e| format!("harness: creating another chat: {e}"))?;
        let mut a1 = join(&mut h, &one, 0, APP).await?;
        let mut b1 = join(&mut h, &one, 1, APP).await?;
        let mut a2 = join(&mut h, &two, 0, APP).await?;
        let mut b2 = join(&mut h, &two, 1, APP).await?;
        barrier(&mut a1, &mut [&mut b1]).await?;
        barrier(&mut a2, &mut [&mut b2]).await?;
        send(&mut a1, b"in chat one", "member 0, chat one").await?;
        send(&mut a2, b"in chat two", "member 0, chat two").await?;
        expect_payload(&mut b2, b"in chat two", "member 1, chat two").await?;
        expect_payload(&mut b1, b"in chat one", "member 1, chat one").await?;
        let (q1, q2) = futures::join!(
            expect_nothing(&mut b1, QUIET, "member 1, chat one"),
            expect_nothing(&mut b2, QUIET, "member 1, chat two"),
        );
        q1.and(q2)
    })
    .await
}

// ----- rule 7: ephemeral -----

/// A peer that joins later receives nothing sent before it joined.
///
/// "Before it joined" is made causal: the late joiner's device has already
/// seen a marker sent *after* the old payload (on another instance it had
/// joined) when it joins. Without that, the old payload may still be in
/// flight to the device at the moment of the join (a member already in an
/// XMPP room receives the room's traffic whether or not its app joined),
/// and the suite could not tell "sent before the join" from "arrived
/// after it".
pub async fn late_joiner_receives_nothing_older<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let chat = new_chat(&mut h, 3).await?;
        let mut a = join(&mut h, &chat, 0, APP).await?;
        let mut b = join(&mut h, &chat, 1, APP).await?;
        let mut a_m = join(&mut h, &chat, 0, "marker").await?;
        let mut c_m = join(&mut h, &chat, 2, "marker").await?;
        barrier(&mut a, &mut [&mut b]).await?;
        barrier(&mut a_m, &mut [&mut c_m]).await?;
        send(&mut a, b"old", "member 0").await?;
        // Member 1 got it: the transport has handled it.
        expect_payload(&mut b, b"old", "member 1").await?;
        // Member 2's device has handled traffic sent after it.
        send(&mut a_m, b"after old", "member 0, marker instance").await?;
        expect_payload(&mut c_m, b"after old", "member 2, marker instance").await?;
        let mut c = join(&mut h, &chat, 2, APP).await?;
        // The barrier fails on anything but its markers, so "old" never
        // came before them; and the transport keeps per-sender order.
        barrier(&mut a, &mut [&mut b, &mut c]).await?;
        send(&mut a, b"new", "member 0").await?;
        expect_payload(&mut c, b"new", "member 2 (the late joiner)").await?;
        expect_payload(&mut b, b"new", "member 1").await
    })
    .await
}

// ----- rules 1 and 4: join and leave -----

/// After `leave`, the channel delivers nothing more, at once: even what was
/// already queued is gone, and the others go on.
pub async fn leave_stops_delivery_at_once<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (chat, mut ch) = joined(&mut h, 3).await?;
        // A second instance stays joined, to know when member 1 has
        // handled what member 0 sent.
        let mut a_m = join(&mut h, &chat, 0, "marker").await?;
        let mut b_m = join(&mut h, &chat, 1, "marker").await?;
        connect_all(&mut ch).await?;
        barrier(&mut a_m, &mut [&mut b_m]).await?;

        send(&mut ch[0], b"queued before leave", "member 0").await?;
        send(&mut a_m, b"sent after", "member 0, marker instance").await?;
        expect_payload(&mut b_m, b"sent after", "member 1, marker instance").await?;
        // Member 2 got it, so it is on its way to member 1 too (or queued).
        expect_payload(&mut ch[2], b"queued before leave", "member 2").await?;
        ch[1].leave().await;
        match ch[1].recv(PATIENCE).await {
            Received::Closed => {}
            other => {
                return Err(format!(
                    "after leave, member 1's channel gave {}, expected Closed",
                    show_received(&other)
                ))
            }
        }
        send(&mut ch[0], b"while 1 is away", "member 0").await?;
        send(&mut a_m, b"after that", "member 0, marker instance").await?;
        expect_payload(&mut b_m, b"after that", "member 1, marker instance").await?;
        if let r @ Received::Payload(_) = ch[1].recv(std::time::Duration::ZERO).await {
            return Err(format!(
                "member 1 received {} after leave",
                show_received(&r)
            ));
        }
        // The others go on.
        expect_payload(&mut ch[2], b"while 1 is away", "member 2").await?;
        send(&mut ch[2], b"still here", "member 2").await?;
        expect_payload(&mut ch[0], b"still here", "member 0").await
    })
    .await
}

/// Leaving twice is harmless: no error, the others are unaffected.
pub async fn leave_twice_is_harmless<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 3).await?;
        connect_all(&mut ch).await?;
        ch[1].leave().await;
        ch[1].leave().await;
        match ch[1].recv(PATIENCE).await {
            Received::Closed => {}
            other => {
                return Err(format!(
                    "after two leaves, the channel gave {}, expected Closed",
                    show_received(&other)
                ))
            }
        }
        send(&mut ch[0], b"after the double leave", "member 0").await?;
        expect_payload(&mut ch[2], b"after the double leave", "member 2").await?;
        send(&mut ch[2], b"answer", "member 2").await?;
        expect_payload(&mut ch[0], b"answer", "member 0").await
    })
    .await
}

/// `send` after `leave` fails with `Left`.
pub async fn send_after_leave_is_an_error<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        a.leave().await;
        match a.send(b"after leave").await {
            Err(SendFailure::Left) => {}
            other => {
                return Err(format!(
                    "send after leave gave {other:?}, expected Err(Left)"
                ))
            }
        }
        // By causality, nothing of it reached member 1: a fresh channel of
        // member 0 is heard first.
        let mut a2 = join(&mut h, &chat, 0, APP).await?;
        barrier(&mut a2, &mut [&mut *b]).await?;
        Ok(())
    })
    .await
}

/// A second join of the same instance by the same member, while the first
/// is not left, fails with `AlreadyJoined`; the first channel keeps working.
pub async fn double_join_is_an_error<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (chat, mut ch) = joined(&mut h, 2).await?;
        match h.join(&chat, 0, APP).await {
            Ok(Err(JoinFailure::AlreadyJoined)) => {}
            Ok(Err(other)) => {
                return Err(format!(
                    "second join gave Err({other:?}), expected Err(AlreadyJoined)"
                ))
            }
            Ok(Ok(_)) => return Err("second join succeeded, expected Err(AlreadyJoined)".into()),
            Err(e) => return Err(format!("harness: {e}")),
        }
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        send(a, b"first channel", "member 0").await?;
        expect_payload(b, b"first channel", "member 1").await
    })
    .await
}

/// After `leave`, joining the same instance again gives a working channel.
pub async fn join_again_after_leave_works<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (chat, mut ch) = joined(&mut h, 2).await?;
        {
            let (a, b) = pair(&mut ch, 0, 1);
            connect_pair(a, b).await?;
        }
        ch[1].leave().await;
        let mut again = join(&mut h, &chat, 1, APP).await?;
        connect_pair(&mut ch[0], &mut again).await?;
        send(&mut ch[0], b"welcome back", "member 0").await?;
        expect_payload(&mut again, b"welcome back", "member 1 (joined again)").await?;
        send(&mut again, b"glad to be back", "member 1 (joined again)").await?;
        expect_payload(&mut ch[0], b"glad to be back", "member 0").await
    })
    .await
}

/// Both members join at the same moment (back to back, no traffic in
/// between); then both directions work.
pub async fn simultaneous_join_both_directions<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let chat = new_chat(&mut h, 2).await?;
        let mut a = join(&mut h, &chat, 0, APP).await?;
        let mut b = join(&mut h, &chat, 1, APP).await?;
        // No traffic between the two joins: neither could have learnt of
        // the other from a payload before both were joined.
        connect_pair(&mut a, &mut b).await?;
        send(&mut a, b"a to b", "member 0").await?;
        send(&mut b, b"b to a", "member 1").await?;
        expect_payload(&mut b, b"a to b", "member 1").await?;
        expect_payload(&mut a, b"b to a", "member 0").await
    })
    .await
}

// ----- rules 2 and 10: throughput and slow readers -----

/// A burst of 200 payloads of 8 KB reaches two receivers without loss and
/// without a `Lagged` report (healthy local transport).
pub async fn burst_of_200_without_loss<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 3).await?;
        connect_all(&mut ch).await?;
        let payload = |i: u32| {
            let mut p = vec![(i % 251) as u8; 8192];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        };
        for i in 0..200u32 {
            send(&mut ch[0], &payload(i), "member 0").await?;
        }
        for (r, receiver) in ch.iter_mut().enumerate().skip(1) {
            for i in 0..200u32 {
                expect_payload(receiver, &payload(i), &format!("member {r}, payload #{i}")).await?;
            }
        }
        Ok(())
    })
    .await
}

/// A listener that does not read while 1100 payloads of 1000 bytes arrive
/// (more than the 1024 deliveries the library queues by default) gets
/// every payload in order or a `Lagged` report counting the ones dropped:
/// nothing goes missing silently, and the backend may bound its memory by
/// dropping.
pub async fn slow_reader_gets_queue_or_lagged<H: Harness>(mut h: H) -> Outcome {
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        let (a, b) = pair(&mut ch, 0, 1);
        connect_pair(a, b).await?;
        const N: u32 = 1100;
        let payload = |i: u32| {
            let mut p = vec![(i % 253) as u8; 1000];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        };
        // Member 1 does not read while member 0 sends everything.
        for i in 0..N {
            send(a, &payload(i), "member 0").await?;
        }
        send(a, b"end", "member 0").await?;
        let (mut received, mut dropped, mut next) = (0u64, 0u64, 0u32);
        loop {
            match b.recv(PATIENCE).await {
                Received::Payload(d) if d == b"end" => break,
                Received::Payload(d) => {
                    let i = match d.get(..4) {
                        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
                        None => return Err(format!("unexpected payload {}", show(&d))),
                    };
                    if i < next || i >= N || d != payload(i) {
                        return Err(format!(
                            "payload #{i} arrived after #{} or damaged",
                            next.saturating_sub(1)
                        ));
                    }
                    next = i + 1;
                    received += 1;
                }
                Received::Lagged(n) => dropped += n,
                other => {
                    return Err(format!(
                        "after {received} payloads and {dropped} reported dropped: {}",
                        show_received(&other)
                    ))
                }
            }
        }
        if received + dropped != u64::from(N) {
            return Err(format!(
                "{received} payloads received and {dropped} reported dropped, of {N} sent: \
                 {} went missing silently",
                u64::from(N).saturating_sub(received + dropped)
            ));
        }
        Ok(())
    })
    .await
}

// ----- rule 10: the transport restarts -----

/// The transport restarts under the connected peers; afterwards both
/// directions work again on the same channels. Capability `restart`.
pub async fn transport_restart_channel_works_again<H: Harness>(mut h: H) -> Outcome {
    if !h.capabilities().restart {
        return skip("capability restart: the backend cannot restart its transport");
    }
    outcome(async {
        let (_chat, mut ch) = joined(&mut h, 2).await?;
        {
            let (a, b) = pair(&mut ch, 0, 1);
            connect_pair(a, b).await?;
        }
        h.restart()
            .await
            .map_err(|e| format!("harness: restart: {e}"))?;
        let (a, b) = pair(&mut ch, 0, 1);
        // Reconnecting takes the clients' back-off plus a new login and
        // room join: a longer hang guard than PATIENCE.
        barrier_within(a, &mut [&mut *b], RESTART_PATIENCE).await?;
        barrier_within(b, &mut [&mut *a], RESTART_PATIENCE).await?;
        send(a, b"after the restart", "member 0").await?;
        expect_payload(b, b"after the restart", "member 1").await?;
        send(b, b"and back", "member 1").await?;
        expect_payload(a, b"and back", "member 0").await
    })
    .await
}

// ----- the registry -----

/// A case's future, boxed so cases of one harness type fit in one list.
pub type CaseFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// One case, for harness type `H`.
pub struct Case<H> {
    /// The case's function name.
    pub name: &'static str,
    /// Runs it on a fresh harness.
    pub run: fn(H) -> CaseFuture,
}

impl<H> Clone for Case<H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for Case<H> {}

impl<H> std::fmt::Debug for Case<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

macro_rules! registry {
    (; $($case:ident),* $(,)?) => {
        /// Every case, in the order of the report.
        pub fn all<H: Harness + 'static>() -> Vec<Case<H>> {
            vec![$(Case { name: stringify!($case), run: |h| Box::pin($case(h)) }),*]
        }

        /// The names of every case, in the order of the report.
        pub const NAMES: &[&str] = &[$(stringify!($case)),*];
    };
}

crate::__with_cases!(registry!());

/// The suite's case list, written once, in the order of the report: calls
/// `$callback!(args; case, case, ...)`. [`all`], [`NAMES`] and the
/// [`conformance_tests!`](crate::conformance_tests) macro are all made from
/// it, so they cannot differ.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($($callback:ident)::+ ! ($($args:tt)*)) => {
        $($callback)::+!($($args)*;
            two_peers_both_directions,
            three_peers_all_receive,
            exact_bytes_all_256_values,
            empty_payload,
            max_size_payload_round_trip,
            oversize_rejected_channel_still_works,
            no_self_echo,
            other_device_of_same_member_receives,
            per_sender_order_200,
            identical_payloads_both_delivered,
            no_duplicates_when_send_races_join,
            isolation_between_instances_in_one_chat,
            isolation_between_chats_same_instance,
            late_joiner_receives_nothing_older,
            leave_stops_delivery_at_once,
            leave_twice_is_harmless,
            send_after_leave_is_an_error,
            double_join_is_an_error,
            join_again_after_leave_works,
            simultaneous_join_both_directions,
            burst_of_200_without_loss,
            slow_reader_gets_queue_or_lagged,
            transport_restart_channel_works_again,
        );
    };
}
