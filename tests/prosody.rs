//! The library end to end against a real Prosody started for each test.
//!
//! Absence ("nothing else arrived") is shown by causality, not by waiting:
//! the room hands stanzas to each occupant in the order it processed them,
//! so when a marker sent *after* the event in question is the first thing a
//! channel receives, nothing from that event was delivered before it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use webxdc_realtime_xmpp::{
    Client, ClientEvent, Config, ConnectError, ConnectionEvent, Delivery, ErrorCondition,
    GroupError, JoinError, SendError, MAX_PAYLOAD,
};
use xmpp_test_server::{Options, TestServer};

/// Three peers in one room, all joined to one instance, connectivity shown.
async fn three_peers(
    server: &TestServer,
    thread: &str,
) -> (
    [webxdc_realtime_xmpp::Client; 3],
    [webxdc_realtime_xmpp::Channel; 3],
) {
    let r = room(server, "three");
    let a = client(server, "alice").await;
    let b = client(server, "bob").await;
    let c = client(server, "carol").await;
    let mut ca = join(&a, &r, thread).await;
    let mut cb = join(&b, &r, thread).await;
    let mut cc = join(&c, &r, thread).await;
    barrier(&ca, &mut [&mut cb, &mut cc]).await;
    barrier(&cb, &mut [&mut ca, &mut cc]).await;
    ([a, b, c], [ca, cb, cc])
}

#[tokio::test]
async fn three_peers_both_directions_and_no_self_echo() {
    let server = prosody();
    let (_clients, [mut a, mut b, mut c]) = three_peers(&server, "t").await;

    a.send(b"from a").await.unwrap();
    assert_eq!(next_payload(&mut b).await.data, b"from a");
    assert_eq!(next_payload(&mut c).await.data, b"from a");
    // b answers only after a's payload went through the room, so the
    // room's reflection of a's payload reached a before b's answer.
    b.send(b"from b").await.unwrap();
    let got = next_payload(&mut a).await;
    assert_eq!(got.data, b"from b", "a received its own echo");
    assert!(
        got.from.to_string().contains("/bob-"),
        "sender identity: {}",
        got.from
    );
    assert_eq!(next_payload(&mut c).await.data, b"from b");
    c.send(b"from c").await.unwrap();
    assert_eq!(next_payload(&mut a).await.data, b"from c");
    assert_eq!(
        next_payload(&mut b).await.data,
        b"from c",
        "b received its own echo"
    );
}

#[tokio::test]
async fn exact_bytes_empty_and_max_size() {
    let server = prosody();
    let (_clients, [a, mut b, mut c]) = three_peers(&server, "bytes").await;
    let all: Vec<u8> = (0..=255u8).collect();
    let max: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i * 7 % 256) as u8).collect();
    for payload in [all.clone(), Vec::new(), max.clone()] {
        a.send(&payload).await.unwrap();
        assert_eq!(next_payload(&mut b).await.data, payload);
        assert_eq!(next_payload(&mut c).await.data, payload);
    }
}

#[tokio::test]
async fn oversize_is_rejected_locally_and_the_connection_stays_up() {
    let server = prosody();
    let (clients, [a, mut b, _c]) = three_peers(&server, "big").await;
    let mut events = clients[0].events();
    let err = a.send(&vec![0u8; MAX_PAYLOAD + 1]).await.unwrap_err();
    assert_eq!(
        err,
        SendError::TooLarge {
            size: MAX_PAYLOAD + 1
        }
    );
    a.send(b"next").await.unwrap();
    assert_eq!(next_payload(&mut b).await.data, b"next");
    assert!(
        !matches!(
            events.try_recv(),
            Ok(ClientEvent::Connection(ConnectionEvent::Disconnected))
        ),
        "the oversize payload must not have touched the stream"
    );
}

/// Two clients of one account `name`: a phone and a laptop.
async fn two_devices(
    server: &TestServer,
    name: &str,
) -> (webxdc_realtime_xmpp::Client, webxdc_realtime_xmpp::Client) {
    let (jid, password) = server.account(name).unwrap();
    let cfg = |res: &str| {
        Config::new(jid.parse().unwrap(), password.clone())
            .danger_plaintext_loopback_only(server.c2s_addr())
            .with_resource(res)
    };
    let phone = webxdc_realtime_xmpp::Client::connect(cfg("phone"))
        .await
        .unwrap();
    let laptop = webxdc_realtime_xmpp::Client::connect(cfg("laptop"))
        .await
        .unwrap();
    (phone, laptop)
}

#[tokio::test]
async fn two_devices_of_one_account_are_peers() {
    let server = prosody();
    let (phone, laptop) = two_devices(&server, "dana").await;
    assert_ne!(phone.nick(), laptop.nick());
    let r = room(&server, "devices");
    let mut p = join(&phone, &r, "t").await;
    let mut l = join(&laptop, &r, "t").await;
    barrier(&p, &mut [&mut l]).await;
    barrier(&l, &mut [&mut p]).await;
    p.send(b"to my laptop").await.unwrap();
    assert_eq!(next_payload(&mut l).await.data, b"to my laptop");
    l.send(b"to my phone").await.unwrap();
    assert_eq!(next_payload(&mut p).await.data, b"to my phone");
}

#[tokio::test]
async fn isolation_by_thread_and_by_room() {
    let server = prosody();
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let (r1, r2) = (room(&server, "one"), room(&server, "two"));
    let a1 = a.group(r1.clone()).await.unwrap();
    let a2 = a.group(r2.clone()).await.unwrap();
    let b1 = b.group(r1).await.unwrap();
    let b2 = b.group(r2).await.unwrap();

    let a_t1 = a1.join_realtime_channel("t1").unwrap();
    let a_t2 = a1.join_realtime_channel("t2").unwrap();
    let a_r2 = a2.join_realtime_channel("t1").unwrap();
    let mut b_t2 = b1.join_realtime_channel("t2").unwrap();
    let mut b_r2 = b2.join_realtime_channel("t1").unwrap();
    barrier(&a_t2, &mut [&mut b_t2]).await;
    barrier(&a_r2, &mut [&mut b_r2]).await;

    // Same room, other instance: b_t2 must not see t1's payload.
    a_t1.send(b"t1 only").await.unwrap();
    a_t2.send(b"t2 marker").await.unwrap();
    assert_eq!(next_payload(&mut b_t2).await.data, b"t2 marker");
    // Same instance id, other room: b in room two must not see room one's.
    a_t1.send(b"room one only").await.unwrap();
    a_r2.send(b"room two marker").await.unwrap();
    assert_eq!(next_payload(&mut b_r2).await.data, b"room two marker");
    assert!(b_t2.try_recv().is_err());
}

#[tokio::test]
async fn late_joiner_gets_nothing_older() {
    let server = prosody();
    let r = room(&server, "late");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca, &mut [&mut cb]).await;
    ca.send(b"old").await.unwrap();
    assert_eq!(next_payload(&mut cb).await.data, b"old"); // the room processed it
    let c = client(&server, "carol").await;
    let mut cc = join(&c, &r, "t").await;
    // The barrier fails on anything but its markers, so "old" never came.
    barrier(&ca, &mut [&mut cc]).await;
    ca.send(b"new").await.unwrap();
    assert_eq!(next_payload(&mut cc).await.data, b"new");
}

#[tokio::test]
async fn order_is_kept_and_identical_payloads_are_both_delivered() {
    let server = prosody();
    let (_clients, [a, mut b, _c]) = three_peers(&server, "order").await;
    for i in 0..200u32 {
        a.send(&i.to_be_bytes()).await.unwrap();
    }
    for i in 0..200u32 {
        assert_eq!(next_payload(&mut b).await.data, i.to_be_bytes());
    }
    a.send(b"same").await.unwrap();
    a.send(b"same").await.unwrap();
    a.send(b"end").await.unwrap();
    assert_eq!(next_payload(&mut b).await.data, b"same");
    assert_eq!(next_payload(&mut b).await.data, b"same");
    assert_eq!(next_payload(&mut b).await.data, b"end");
}

#[tokio::test]
async fn leave_double_join_and_rejoin() {
    let server = prosody();
    let r = room(&server, "leave");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let ga = a.group(r.clone()).await.unwrap();
    let gb = b.group(r).await.unwrap();
    let mut ca = ga.join_realtime_channel("t").unwrap();
    let mut cb = gb.join_realtime_channel("t").unwrap();
    assert_eq!(
        ga.join_realtime_channel("t").unwrap_err(),
        JoinError::AlreadyJoined
    );
    // A second instance that stays joined, to know when b has processed
    // what a sent while b's first channel was left.
    let a_marker = ga.join_realtime_channel("marker").unwrap();
    let mut b_marker = gb.join_realtime_channel("marker").unwrap();
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&a_marker, &mut [&mut b_marker]).await;

    cb.leave();
    cb.leave(); // idempotent
    assert_eq!(cb.send(b"x").await.unwrap_err(), SendError::Left);
    assert!(cb.next().await.is_none(), "a left channel ends at once");
    ca.send(b"while b is away").await.unwrap();
    a_marker.send(b"sent after").await.unwrap();
    assert_eq!(next_payload(&mut b_marker).await.data, b"sent after");

    let mut cb2 = gb.join_realtime_channel("t").unwrap();
    barrier(&ca, &mut [&mut cb2]).await;
    ca.send(b"back").await.unwrap();
    assert_eq!(next_payload(&mut cb2).await.data, b"back");
    cb2.send(b"hello again").await.unwrap();
    assert_eq!(next_payload(&mut ca).await.data, b"hello again");
}

#[tokio::test]
async fn direct_chat_both_directions() {
    let server = prosody();
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let mut ca = a
        .direct(b.jid().to_bare())
        .join_realtime_channel("t")
        .unwrap();
    let mut cb = b
        .direct(a.jid().to_bare())
        .join_realtime_channel("t")
        .unwrap();
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&cb, &mut [&mut ca]).await;
    ca.send(&[0, 1, 2, 255]).await.unwrap();
    let got = next_payload(&mut cb).await;
    assert_eq!(got.data, [0, 1, 2, 255]);
    assert_eq!(got.from.to_bare(), a.jid().to_bare());
    cb.send(b"pong").await.unwrap();
    assert_eq!(next_payload(&mut ca).await.data, b"pong");
}

/// The stanza exactly as Cheogram builds it (no origin-id, no type on the
/// data, base64 in `<data/>`) is delivered; ours has the shape Cheogram
/// reads.
#[tokio::test]
async fn cheogram_interop_both_ways() {
    let server = prosody();
    let r = room(&server, "cheogram");
    let ours = client(&server, "alice").await;
    let mut ch = join(&ours, &r, "webxdc-thread").await;
    let mut cheogram = RawClient::connect(&server, "cheo").await;
    cheogram.enter_room(&r, "cheo").await;

    cheogram
        .send_xml(&format!(
            "<message xmlns='jabber:client' to='{r}' type='groupchat' id='c1'>\
               <thread>webxdc-thread</thread>\
               <no-store xmlns='urn:xmpp:hints'/>\
               <x xmlns='urn:xmpp:webxdc:0'><data>AAEC/w==</data></x>\
             </message>"
        ))
        .await;
    let got = next_payload(&mut ch).await;
    assert_eq!(got.data, [0, 1, 2, 255]);
    assert_eq!(got.from.resource().map(|r| r.as_str()), Some("cheo"));

    ch.send(&[9, 8, 7]).await.unwrap();
    let ours_from = format!("{r}/{}", ours.nick());
    let el = cheogram
        .next_matching(|el| el.name() == "message" && el.attr("from") == Some(&*ours_from))
        .await;
    assert_eq!(el.attr("type"), Some("groupchat"));
    assert_eq!(
        el.get_child("thread", "jabber:client").unwrap().text(),
        "webxdc-thread"
    );
    assert!(el.has_child("no-store", "urn:xmpp:hints"));
    assert!(el.get_child("body", "jabber:client").is_none());
    let data = el
        .get_child("x", "urn:xmpp:webxdc:0")
        .and_then(|x| x.get_child("data", "urn:xmpp:webxdc:0"))
        .expect("x/data")
        .text();
    assert_eq!(data, "CQgH");
    cheogram.close().await;
}

/// Stanzas that do not come from the chat are never delivered.
#[tokio::test]
async fn forged_and_outside_stanzas_are_not_delivered() {
    let server = prosody();
    let r = room(&server, "private");
    let b = client(&server, "bob").await;
    let mut group = join(&b, &r, "t").await;
    let mut outsider = RawClient::connect(&server, "eve").await;
    let mut from_eve = b
        .direct(outsider.jid.to_bare())
        .join_realtime_channel("marker")
        .unwrap();
    let bob = b.jid();
    let frame = |to: &str, ty: &str, extra: &str| {
        format!(
            "<message xmlns='jabber:client' to='{to}' type='{ty}' {extra}>\
               <thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>ZXZl</data></x></message>"
        )
    };
    // A groupchat frame straight to bob (the server stamps eve's JID).
    outsider
        .send_xml(&frame(&bob.to_string(), "groupchat", ""))
        .await;
    // A 1:1 frame for the group's instance.
    outsider
        .send_xml(&frame(&bob.to_string(), "chat", ""))
        .await;
    // Eve is no occupant: the room refuses her frame.
    outsider
        .send_xml(&frame(&r.to_string(), "groupchat", ""))
        .await;
    // A frame on eve's own 1:1 channel: everything above was routed to bob
    // before it, so once it arrives the group channel must still be empty.
    outsider
        .send_xml(&format!(
            "<message xmlns='jabber:client' to='{bob}' type='chat'><thread>marker</thread>\
               <x xmlns='urn:xmpp:webxdc:0'><data>bWFya2Vy</data></x></message>"
        ))
        .await;
    assert_eq!(next_payload(&mut from_eve).await.data, b"marker");
    assert!(
        group.try_recv().is_err(),
        "a forged or outside frame was delivered"
    );

    // A private message through the room (from an occupant) is not a group
    // frame either.
    let mut insider = RawClient::connect(&server, "mallory").await;
    insider.enter_room(&r, "mallory").await;
    insider
        .send_xml(&frame(&format!("{r}/{}", b.nick()), "chat", ""))
        .await;
    insider
        .send_xml(&format!(
            "<message xmlns='jabber:client' to='{r}' type='groupchat'><thread>t</thread>\
               <x xmlns='urn:xmpp:webxdc:0'><data>Z3JvdXA=</data></x></message>"
        ))
        .await;
    assert_eq!(next_payload(&mut group).await.data, b"group");
    outsider.close().await;
    insider.close().await;
}

/// Nothing sent on a channel ends up in the room's archive, while an
/// ordinary message does (so the check itself can fail).
#[tokio::test]
async fn the_server_archive_holds_no_payload() {
    let server = TestServer::start(Options {
        muc_archive: true,
        ..Options::prosody()
    })
    .unwrap();
    let r = room(&server, "archived");
    let (_c, [a, mut b, _]) = three_peers_in(&server, &r).await;
    for i in 0..5 {
        a.send(format!("secret-{i}").as_bytes()).await.unwrap();
        next_payload(&mut b).await;
    }
    let mut raw = RawClient::connect(&server, "auditor").await;
    raw.enter_room(&r, "auditor").await;
    raw.send_xml(&format!(
        "<message xmlns='jabber:client' to='{r}' type='groupchat'><body>ordinary</body></message>"
    ))
    .await;
    raw.next_matching(|el| {
        el.name() == "message" && el.get_child("body", "jabber:client").is_some()
    })
    .await;
    raw.send_xml(&format!(
        "<iq xmlns='jabber:client' type='set' to='{r}' id='mam1'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>"
    ))
    .await;
    let mut archived = Vec::new();
    loop {
        let el = raw
            .next_matching(|el| {
                (el.name() == "message" && el.has_child("result", "urn:xmpp:mam:2"))
                    || (el.name() == "iq" && el.attr("id") == Some("mam1"))
            })
            .await;
        if el.name() == "iq" {
            assert_eq!(el.attr("type"), Some("result"), "MAM query failed: {el:?}");
            break;
        }
        let mut xml = Vec::new();
        el.write_to(&mut xml).unwrap();
        archived.push(String::from_utf8_lossy(&xml).into_owned());
    }
    assert!(
        archived.iter().any(|m| m.contains("ordinary")),
        "the archive works: {archived:?}"
    );
    assert!(
        !archived.iter().any(|m| m.contains("webxdc")),
        "a realtime payload was archived: {archived:?}"
    );
    raw.close().await;
}

async fn three_peers_in(
    server: &TestServer,
    r: &webxdc_realtime_xmpp::jid::BareJid,
) -> (
    Vec<webxdc_realtime_xmpp::Client>,
    [webxdc_realtime_xmpp::Channel; 3],
) {
    let mut clients = Vec::new();
    let mut chans = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let c = client(server, name).await;
        chans.push(join(&c, r, "t").await);
        clients.push(c);
    }
    let [mut a, mut b, mut c]: [_; 3] = chans.try_into().unwrap();
    barrier(&a, &mut [&mut b, &mut c]).await;
    barrier(&b, &mut [&mut a]).await;
    (clients, [a, b, c])
}

#[tokio::test]
async fn wrong_password_fails_within_the_bound() {
    let server = prosody();
    let (jid, _) = server.account("alice").unwrap();
    let bound = Duration::from_secs(5);
    let start = Instant::now();
    let err = webxdc_realtime_xmpp::Client::connect(
        Config::new(jid.parse().unwrap(), "not-the-password")
            .danger_plaintext_loopback_only(server.c2s_addr())
            .with_connect_timeout(bound),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Auth(_)), "{err:?}");
    assert!(start.elapsed() <= bound, "took {:?}", start.elapsed());
}

#[tokio::test]
async fn unreachable_server_fails_within_the_bound() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bound = Duration::from_millis(800);
    let err = webxdc_realtime_xmpp::Client::connect(
        Config::new("alice@localhost".parse().unwrap(), "pw")
            .danger_plaintext_loopback_only(port)
            .with_connect_timeout(bound),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn plaintext_is_refused_off_loopback() {
    let err = webxdc_realtime_xmpp::Client::connect(
        Config::new("alice@localhost".parse().unwrap(), "pw")
            .danger_plaintext_loopback_only("192.0.2.1:5222".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn server_restart_reconnects_rejoins_and_delivers_again() {
    let mut server = prosody();
    let r = room(&server, "restart");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let mut events = a.events();
    let mut ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca, &mut [&mut cb]).await;

    server.restart().unwrap();

    // The channel is told about the outage and the return.
    let mut saw = (false, false);
    tokio::time::timeout(PATIENCE, async {
        while !(saw.0 && saw.1) {
            match ca.next().await {
                Some(Delivery::Connection(ConnectionEvent::Disconnected)) => saw.0 = true,
                Some(Delivery::Connection(ConnectionEvent::Reconnected { resumed })) => {
                    assert!(!resumed, "a restarted server cannot resume the session");
                    saw.1 = true
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("channel ended"),
            }
        }
    })
    .await
    .expect("disconnect and reconnect reported");
    // Both directions work again once the rooms are re-joined.
    barrier(&ca, &mut [&mut cb]).await;
    barrier(&cb, &mut [&mut ca]).await;
    let mut kinds = Vec::new();
    while let Ok(ev) = events.try_recv() {
        kinds.push(ev);
    }
    assert!(
        kinds.contains(&ClientEvent::Connection(ConnectionEvent::Disconnected)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&ClientEvent::Connection(ConnectionEvent::Reconnected {
            resumed: false
        })),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn shutdown_ends_channels_and_is_clean() {
    let server = prosody();
    let a = client(&server, "alice").await;
    let mut ch = join(&a, &room(&server, "bye"), "t").await;
    a.shutdown().await;
    assert!(ch.next().await.is_none());
    assert_eq!(ch.send(b"x").await.unwrap_err(), SendError::Closed);
    assert!(matches!(
        a.group(room(&server, "other")).await,
        Err(webxdc_realtime_xmpp::GroupError::Closed)
    ));
}

/// Stanzas that a peer can get the server to forward but that the XML
/// stanza parser rejects must not cost us the connection.
#[tokio::test]
async fn hostile_stanzas_do_not_break_the_connection() {
    let server = prosody();
    let b = client(&server, "bob").await;
    let mut events = b.events();
    let mut eve = RawSocket::connect(&server, "eve").await;
    let eve_bare: webxdc_realtime_xmpp::jid::BareJid =
        eve.jid.split('/').next().unwrap().parse().unwrap();
    let mut from_eve = b.direct(eve_bare).join_realtime_channel("t").unwrap();
    let bob = b.jid();
    let hostile = [
        // Two threads.
        format!("<message xmlns='jabber:client' to='{bob}' type='chat'><thread>a</thread><thread>b</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>"),
        // Bad base64 and an oversize claim.
        format!("<message xmlns='jabber:client' to='{bob}' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>!!!!</data></x></message>"),
        format!("<message xmlns='jabber:client' to='{bob}' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>{}</data></x></message>", "QUFB".repeat(43_000)),
        // Two data elements, unknown type.
        format!("<message xmlns='jabber:client' to='{bob}' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data><data>aGk=</data></x></message>"),
        format!("<message xmlns='jabber:client' to='{bob}' type='bogus'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>"),
    ];
    // Written as raw bytes: typed XMPP libraries refuse to build some of
    // these, but a hostile peer's client can send them and the server
    // forwards them.
    for xml in &hostile {
        eve.write(xml).await;
    }
    eve.write(&format!(
        "<message xmlns='jabber:client' to='{bob}' type='chat'><thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>b2s=</data></x></message>"
    ))
    .await;
    assert_eq!(next_payload(&mut from_eve).await.data, b"ok");
    assert!(
        from_eve.try_recv().is_err(),
        "a hostile stanza was delivered"
    );
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev, ClientEvent::Connection(_)),
            "the connection dropped: {ev:?}"
        );
    }
}

/// Leaving a room before shutdown: its channels end at once, the peers in
/// the room go on, and the room can be entered again.
#[tokio::test]
async fn leaving_a_room_ends_its_channels_and_it_can_be_entered_again() {
    let server = prosody();
    let r = room(&server, "leave-room");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let c = client(&server, "carol").await;
    let mut ca = join(&a, &r, "t").await;
    let mut cb = join(&b, &r, "t").await;
    let mut cc = join(&c, &r, "t").await;
    barrier(&ca, &mut [&mut cb, &mut cc]).await;

    b.group(r.clone()).await.unwrap().leave().await;
    assert!(cb.next().await.is_none(), "the channel ends with its room");
    assert!(cb.is_left());
    assert_eq!(cb.send(b"x").await.unwrap_err(), SendError::Left);
    // The others go on.
    barrier(&ca, &mut [&mut cc]).await;
    // Entering again gives working channels.
    let mut cb = join(&b, &r, "t").await;
    barrier(&ca, &mut [&mut cb, &mut cc]).await;
    barrier(&cb, &mut [&mut ca]).await;
}

/// A nick that is taken is refused with a typed cause.
#[tokio::test]
async fn a_taken_nick_is_refused_with_a_typed_condition() {
    let server = prosody();
    let r = room(&server, "nick-taken");
    let a = Client::connect(config(&server, "alice").with_nick("same"))
        .await
        .unwrap();
    let b = Client::connect(config(&server, "bob").with_nick("same"))
        .await
        .unwrap();
    a.group(r.clone()).await.unwrap();
    match b.group(r.clone()).await {
        Err(GroupError::Refused { room, condition }) => {
            assert_eq!(room, r);
            assert_eq!(condition, ErrorCondition::Conflict);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What the room says about us: our nick, and that it hides real JIDs
/// (Prosody's default: only moderators see them), and its occupant id for
/// us (XEP-0421, which Prosody 0.12 gives): one account's devices share
/// one, another account has its own.
#[tokio::test]
async fn self_occupant_is_what_the_room_says_about_us() {
    let server = prosody();
    let (phone, laptop) = two_devices(&server, "erin").await;
    let other = client(&server, "frank").await;
    let r = room(&server, "whoami");
    let mut seen = Vec::new();
    for c in [&phone, &laptop, &other] {
        let chat = c.group(r.clone()).await.expect("room joined");
        let me = chat.self_occupant().expect("joined, so known");
        assert_eq!(me.nick, c.nick());
        assert!(
            !me.non_anonymous,
            "Prosody's rooms hide real JIDs by default"
        );
        seen.push(me.occupant_id);
    }
    assert!(seen.iter().all(Option::is_some), "occupant ids: {seen:?}");
    assert_eq!(seen[0], seen[1], "one account, one occupant id");
    assert_ne!(seen[0], seen[2], "another account, another id");
}
