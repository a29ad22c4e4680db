//! Faults survived, against a real server: a frozen server is noticed
//! within the keepalive bound, reported, and the channels work again once
//! it thaws.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::time::timeout;
use webxdc_realtime_xmpp::{Client, ClientEvent, ConnectionEvent, Events};

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Waits for a connection event matching `want`, skipping the others.
async fn connection_event(events: &mut Events, want: fn(&ConnectionEvent) -> bool) {
    timeout(Duration::from_secs(120), async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Connection(ev)) if want(&ev) => return,
                Some(_) => continue,
                None => panic!("client gone"),
            }
        }
    })
    .await
    .expect("the connection event within the hang guard");
}

#[tokio::test]
async fn a_frozen_server_is_noticed_reported_and_survived() {
    let server = prosody();
    let r = room(&server, "frozen");
    let (idle, answer) = (Duration::from_secs(2), Duration::from_secs(2));
    let connect = |name: &'static str| {
        Client::connect(
            config(&server, name)
                .with_keepalive(idle, answer)
                .with_connect_timeout(Duration::from_secs(5)),
        )
    };
    let a = connect("alice").await.unwrap();
    let b = connect("bob").await.unwrap();
    let mut events = a.events();
    let mut ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca, &mut [&mut cb]).await;

    let frozen = Instant::now();
    signal(server.pid(), "-STOP");
    connection_event(&mut events, |e| *e == ConnectionEvent::Disconnected).await;
    let noticed = frozen.elapsed();
    signal(server.pid(), "-CONT");
    let thawed = Instant::now();
    connection_event(&mut events, |e| {
        matches!(e, ConnectionEvent::Reconnected { .. })
    })
    .await;
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&cb, &mut [&mut ca]).await;
    println!(
        "frozen server: noticed after {:.1} s (bound {:.0} s), working again {:.1} s after thawing",
        noticed.as_secs_f64(),
        (idle + answer).as_secs_f64(),
        thawed.elapsed().as_secs_f64()
    );
    // Noticed by the keepalive, not by chance: no later than its bound
    // plus the time for one write to fail, and the bound is what the test
    // set, far below tokio-xmpp's own 75 s.
    assert!(noticed >= idle, "noticed before any keepalive could fire");
}

/// Kicked, then the room destroyed: every channel of the room is told
/// with a typed reason, sends fail with a typed error, and entering the
/// room again brings the channel back.
#[tokio::test]
async fn kicked_and_destroyed_reach_every_channel_typed() {
    use webxdc_realtime_xmpp::{Delivery, RemovalReason, SendError};
    use xmpp_test_server::raw::RawClient;

    let server = prosody();
    let r = room(&server, "moderated");
    // The owner (first in the room) is a raw client: the library has no
    // moderation API.
    let (jid, password) = server.account("owner").unwrap();
    let mut owner = RawClient::login(server.c2s_addr(), server.domain(), &jid, &password, None)
        .expect("owner logs in");
    owner
        .send(&format!(
            "<presence to='{r}/owner'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .unwrap();
    owner
        .read_until("owner's self-presence", |t| {
            t.contains("code='110'") || t.contains("code=\"110\"")
        })
        .unwrap();

    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let mut ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    let mut cb2 = b
        .group(r.clone())
        .await
        .unwrap()
        .join_realtime_channel("t2")
        .unwrap();
    barrier(&ca, &mut [&mut cb]).await;

    async fn removed(ch: &mut webxdc_realtime_xmpp::Channel) -> RemovalReason {
        use futures::StreamExt;
        timeout(PATIENCE, async {
            loop {
                match ch.next().await {
                    Some(Delivery::Removed(reason)) => return reason,
                    Some(Delivery::Connection(_)) => continue,
                    other => panic!("expected a removal, got {other:?}"),
                }
            }
        })
        .await
        .expect("the removal is delivered")
    }

    owner
        .iq(
            "kick1",
            &format!(
                "<iq type='set' id='kick1' to='{r}'><query xmlns='http://jabber.org/protocol/muc#admin'>\
                 <item nick='{}' role='none'/></query></iq>",
                b.nick()
            ),
        )
        .unwrap();
    assert_eq!(removed(&mut cb).await, RemovalReason::Kicked);
    assert_eq!(removed(&mut cb2).await, RemovalReason::Kicked);
    assert_eq!(
        cb.send(b"x").await,
        Err(SendError::RoomNotJoined(r.clone()))
    );
    // Entering again brings the same channels back.
    b.group(r.clone()).await.unwrap();
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&cb, &mut [&mut ca]).await;

    owner
        .iq(
            "destroy1",
            &format!(
                "<iq type='set' id='destroy1' to='{r}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                 <destroy/></query></iq>"
            ),
        )
        .unwrap();
    assert_eq!(removed(&mut ca).await, RemovalReason::Destroyed);
    assert_eq!(removed(&mut cb).await, RemovalReason::Destroyed);
    owner.close();
}
