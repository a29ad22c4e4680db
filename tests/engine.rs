//! The engine alone, as a messenger with its own XMPP connection embeds it:
//! stanzas in as XML text or elements, stanzas out, deliveries out. No
//! network, no runtime, no clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use webxdc_realtime_xmpp::engine::{
    Chat, Engine, EngineConfig, EngineEvent, Handled, Rejection, RoomState,
};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::wire::WireError;
use webxdc_realtime_xmpp::{Delivery, JoinError, QueueLimits, SendError, MAX_PAYLOAD};

const ME: &str = "alice@example.org/phone";
const ROOM: &str = "team@conference.example.org";

fn room() -> BareJid {
    ROOM.parse().unwrap()
}

/// An online engine that is in ROOM as "alice-phone".
fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig::default());
    e.set_online(ME.parse().unwrap(), false);
    e.adopt_room(room(), "alice-phone");
    e
}

fn group_frame(from_nick: &str, thread: &str, b64: &str) -> String {
    format!(
        "<message xmlns='jabber:client' type='groupchat' from='{ROOM}/{from_nick}' to='{ME}'>\
         <thread>{thread}</thread><no-store xmlns='urn:xmpp:hints'/>\
         <x xmlns='urn:xmpp:webxdc:0'><data>{b64}</data></x></message>"
    )
}

fn payload(d: Delivery) -> Vec<u8> {
    match d {
        Delivery::Payload(p) => p.data,
        other => panic!("expected a payload, got {other:?}"),
    }
}

#[test]
fn delivers_to_the_matching_channel_only() {
    let mut e = engine();
    let (t1, in1) = e.join(Chat::Group(room()), "t1").unwrap();
    let (_t2, in2) = e.join(Chat::Group(room()), "t2").unwrap();
    assert_eq!(
        e.handle_xml(&group_frame("bob", "t1", "aGk=")),
        Handled::Delivered(t1)
    );
    assert_eq!(payload(in1.try_recv().unwrap()), b"hi");
    assert!(in2.try_recv().is_err());
    assert_eq!(
        e.handle_xml(&group_frame("bob", "t3", "aGk=")),
        Handled::NoChannel
    );
}

#[test]
fn own_reflection_is_an_echo_by_nick_and_by_origin_id() {
    let mut e = engine();
    let (ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    // Reflection from our own occupant JID.
    assert_eq!(
        e.handle_xml(&group_frame("alice-phone", "t", "aGk=")),
        Handled::Echo
    );
    // Reflection under another nick (the room renamed us) but with our id.
    e.send(ch, b"x").unwrap();
    let out = e.poll_transmit().unwrap();
    let id = out
        .get_child("origin-id", "urn:xmpp:sid:0")
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    let reflected = format!(
        "<message xmlns='jabber:client' type='groupchat' from='{ROOM}/renamed' to='{ME}'>\
         <thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>eA==</data></x>\
         <origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>"
    );
    assert_eq!(e.handle_xml(&reflected), Handled::Echo);
    assert!(inbox.try_recv().is_err());
}

#[test]
fn privacy_only_the_chat_may_deliver() {
    let mut e = engine();
    let (_ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    let cases = [
        // Another room.
        group_frame("bob", "t", "aGk=").replace(ROOM, "other@conference.example.org"),
        // The room itself, no occupant.
        group_frame("bob", "t", "aGk=").replace(&format!("{ROOM}/bob"), ROOM),
        // A contact sending a groupchat frame directly.
        group_frame("bob", "t", "aGk=").replace(&format!("{ROOM}/bob"), "eve@evil.example/x"),
        // A private message through the room.
        group_frame("bob", "t", "aGk=").replace("type='groupchat'", "type='chat'"),
    ];
    for xml in &cases {
        assert_eq!(
            e.handle_xml(xml),
            Handled::Rejected(Rejection::NotFromChat),
            "{xml}"
        );
    }
    // Addressed to somebody else.
    let wrong_to = group_frame("bob", "t", "aGk=").replace(ME, "carol@example.org/x");
    assert_eq!(
        e.handle_xml(&wrong_to),
        Handled::Rejected(Rejection::WrongAddressee)
    );
    assert!(inbox.try_recv().is_err());
}

#[test]
fn a_room_not_joined_delivers_nothing_and_refuses_sends() {
    let mut e = Engine::new(EngineConfig::default());
    e.set_online(ME.parse().unwrap(), false);
    e.join_room(room(), "alice-phone");
    let presence = e.poll_transmit().unwrap();
    assert_eq!(presence.name(), "presence");
    assert_eq!(presence.attr("to"), Some(&*format!("{ROOM}/alice-phone")));
    let history = presence
        .get_child("x", "http://jabber.org/protocol/muc")
        .and_then(|x| x.get_child("history", "http://jabber.org/protocol/muc"))
        .unwrap();
    assert_eq!(history.attr("maxstanzas"), Some("0"));

    let (ch, _inbox) = e.join(Chat::Group(room()), "t").unwrap();
    assert_eq!(
        e.handle_xml(&group_frame("bob", "t", "aGk=")),
        Handled::Rejected(Rejection::RoomNotJoined)
    );
    assert_eq!(
        e.send(ch, b"x").unwrap_err(),
        SendError::RoomNotJoined(room())
    );

    // The room confirms (status 110) under a nick it chose.
    e.handle_xml(&format!(
        "<presence xmlns='jabber:client' from='{ROOM}/alice-2' to='{ME}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/><status code='210'/></x></presence>"
    ));
    assert_eq!(
        e.poll_event(),
        Some(EngineEvent::RoomJoined {
            room: room(),
            nick: "alice-2".into()
        })
    );
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    assert_eq!(
        e.handle_xml(&group_frame("alice-2", "t", "aGk=")),
        Handled::Echo
    );
    e.send(ch, b"x").unwrap();
}

#[test]
fn a_refused_join_is_an_event() {
    let mut e = Engine::new(EngineConfig::default());
    e.set_online(ME.parse().unwrap(), false);
    e.join_room(room(), "alice-phone");
    e.handle_xml(&format!(
        "<presence xmlns='jabber:client' type='error' from='{ROOM}/alice-phone'>\
         <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    ));
    assert_eq!(
        e.poll_event(),
        Some(EngineEvent::RoomJoinFailed {
            room: room(),
            condition: "forbidden".into()
        })
    );
}

#[test]
fn size_limit_join_and_leave_rules() {
    let mut e = engine();
    let (ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    assert_eq!(
        e.join(Chat::Group(room()), "t").unwrap_err(),
        JoinError::AlreadyJoined
    );
    assert_eq!(
        e.join(Chat::Group(room()), "").unwrap_err(),
        JoinError::InvalidThread
    );
    assert_eq!(
        e.send(ch, &vec![0; MAX_PAYLOAD + 1]).unwrap_err(),
        SendError::TooLarge {
            size: MAX_PAYLOAD + 1
        }
    );
    assert_eq!(
        e.transmit_len(),
        0,
        "nothing may be queued for an oversize payload"
    );
    e.send(ch, &vec![0; MAX_PAYLOAD]).unwrap();
    assert_eq!(e.transmit_len(), 1);

    e.handle_xml(&group_frame("bob", "t", "aGk="));
    assert!(e.leave(ch));
    assert!(!e.leave(ch), "leave twice is harmless");
    assert!(
        inbox.try_recv().is_err(),
        "queued data is discarded at leave"
    );
    assert_eq!(e.send(ch, b"x").unwrap_err(), SendError::Left);
    assert_eq!(
        e.handle_xml(&group_frame("bob", "t", "aGk=")),
        Handled::NoChannel
    );
    let (again, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    assert_eq!(
        e.handle_xml(&group_frame("bob", "t", "aGk=")),
        Handled::Delivered(again)
    );
    assert_eq!(payload(inbox.try_recv().unwrap()), b"hi");
}

#[test]
fn malformed_and_hostile_input_is_rejected_without_panic() {
    let mut e = engine();
    let (_ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    let huge = "A".repeat(400_000);
    let cases = [
        group_frame("bob", "t", "not base64!"),
        group_frame("bob", "t", &huge),
        group_frame("bob", "", "aGk="),
        "<message xmlns='jabber:client' type='groupchat'><unclosed>".to_owned(),
        "definitely not xml".to_owned(),
    ];
    for xml in &cases {
        assert!(
            matches!(e.handle_xml(xml), Handled::Rejected(_)),
            "{}",
            &xml[..xml.len().min(80)]
        );
    }
    assert!(matches!(
        e.handle_xml(&group_frame("bob", "t", "aGk=").replace("type='groupchat'", "type='error'")),
        Handled::Rejected(Rejection::Malformed(WireError::ErrorBounce { .. }))
    ));
    assert!(inbox.try_recv().is_err());
}

#[test]
fn a_slow_reader_gets_an_overflow_report_and_bounded_memory() {
    let mut e = Engine::new(EngineConfig {
        queue: QueueLimits {
            max_items: 10,
            max_bytes: 1 << 20,
        },
        ..EngineConfig::default()
    });
    e.set_online(ME.parse().unwrap(), false);
    e.adopt_room(room(), "alice-phone");
    let (_ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    for i in 0..25u8 {
        e.handle_xml(&group_frame("bob", "t", &STANDARD.encode([i])));
    }
    assert_eq!(inbox.len(), 10);
    assert_eq!(inbox.try_recv().unwrap(), Delivery::Lagged { dropped: 15 });
    // The newest ten survive, in order.
    for i in 15..25u8 {
        assert_eq!(payload(inbox.try_recv().unwrap()), [i]);
    }
}

#[test]
fn reconnection_rejoins_rooms_and_tells_channels() {
    let mut e = engine();
    let (ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    e.set_offline();
    assert_eq!(e.send(ch, b"x").unwrap_err(), SendError::Disconnected);
    assert_eq!(
        inbox.try_recv().unwrap(),
        Delivery::Connection(webxdc_realtime_xmpp::ConnectionEvent::Disconnected)
    );
    // A resumed session keeps the room.
    e.set_online(ME.parse().unwrap(), true);
    assert_eq!(e.transmit_len(), 0);
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    // A new session must enter the room again.
    e.set_offline();
    e.set_online("alice@example.org/new".parse().unwrap(), false);
    let p = e.poll_transmit().unwrap();
    assert_eq!(p.name(), "presence");
    assert_eq!(e.room_state(&room()), Some(RoomState::Joining));
    let kinds: Vec<Delivery> = std::iter::from_fn(|| inbox.try_recv().ok()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn direct_chats_are_keyed_by_the_contact() {
    let mut e = engine();
    let bob: BareJid = "bob@example.org".parse().unwrap();
    let (ch, inbox) = e.join(Chat::Direct(bob.clone()), "t").unwrap();
    e.send(ch, b"hi").unwrap();
    let out = e.poll_transmit().unwrap();
    assert_eq!(out.attr("type"), Some("chat"));
    assert_eq!(out.attr("to"), Some("bob@example.org"));
    let from_bob = "<message xmlns='jabber:client' type='chat' from='bob@example.org/laptop'>\
        <thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x></message>";
    assert_eq!(e.handle_xml(from_bob), Handled::Delivered(ch));
    assert_eq!(payload(inbox.try_recv().unwrap()), b"hi");
    let from_carol = from_bob.replace("bob@", "carol@");
    assert_eq!(e.handle_xml(&from_carol), Handled::NoChannel);
}

#[test]
fn one_place_to_poll_transmits_events_and_every_channels_deliveries() {
    use webxdc_realtime_xmpp::engine::Output;
    let mut e = engine();
    let (t1, _in1) = e.join(Chat::Group(room()), "t1").unwrap();
    let (t2, _in2) = e.join(Chat::Group(room()), "t2").unwrap();
    e.send(t1, b"out").unwrap();
    e.handle_xml(&group_frame("bob", "t2", "YQ=="));
    e.handle_xml(&group_frame("bob", "t1", "Yg=="));
    e.handle_xml(&group_frame("bob", "t2", "Yw=="));
    e.handle_xml(&group_frame("bob", "elsewhere", "ZA=="));
    let mut transmits = 0;
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    while let Some(out) = e.poll() {
        match out {
            Output::Transmit(_) => transmits += 1,
            Output::Event(ev) => events.push(ev),
            Output::Delivery { channel, delivery } => deliveries.push((channel, payload(delivery))),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(transmits, 1);
    assert!(matches!(
        events.as_slice(),
        [EngineEvent::UnjoinedInstance { thread, .. }] if thread == "elsewhere"
    ));
    // Per channel in order; channels in the order they became readable.
    assert_eq!(
        deliveries,
        vec![
            (t2, b"a".to_vec()),
            (t1, b"b".to_vec()),
            (t2, b"c".to_vec())
        ]
    );
}

#[test]
fn a_delivery_read_through_the_inbox_is_not_polled_again() {
    let mut e = engine();
    let (_t, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    e.handle_xml(&group_frame("bob", "t", "aGk="));
    assert_eq!(payload(inbox.try_recv().unwrap()), b"hi");
    assert!(e.poll().is_none());
}

#[test]
fn stanza_ids_are_injectable_so_runs_are_deterministic() {
    let run = || {
        let mut n = 0u32;
        let ids = Box::new(move || {
            n += 1;
            format!("id-{n}")
        });
        let mut e = Engine::with_stanza_ids(EngineConfig::default(), ids);
        e.set_online(ME.parse().unwrap(), false);
        e.adopt_room(room(), "alice-phone");
        let (ch, _inbox) = e.join(Chat::Group(room()), "t").unwrap();
        e.send(ch, b"x").unwrap();
        e.send(ch, b"y").unwrap();
        let out: Vec<String> = std::iter::from_fn(|| e.poll_transmit())
            .map(|el| String::from(&el))
            .collect();
        (out, e)
    };
    let (first, mut e) = run();
    let (second, _) = run();
    assert_eq!(first, second);
    assert!(first[0].contains("id-1") && first[1].contains("id-2"));
    // The injected ids are the ones the echo filter remembers: a
    // reflection under another nick is still recognised as ours.
    let reflected = group_frame("renamed", "t", "eA==").replace(
        "</message>",
        "<origin-id xmlns='urn:xmpp:sid:0' id='id-1'/></message>",
    );
    assert_eq!(e.handle_xml(&reflected), Handled::Echo);
}

#[test]
fn room_removals_are_typed() {
    use webxdc_realtime_xmpp::RemovalReason;
    let mut e = engine();
    e.handle_xml(&format!(
        "<presence xmlns='jabber:client' type='unavailable' from='{ROOM}/alice-phone' to='{ME}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
         <status code='307'/><status code='110'/></x></presence>"
    ));
    assert_eq!(
        e.poll_event(),
        Some(EngineEvent::RoomLeft {
            room: room(),
            reason: RemovalReason::Kicked
        })
    );
    assert_eq!(e.room_state(&room()), Some(RoomState::NotJoined));
}

#[test]
fn a_decided_removal_reaches_every_channel_and_is_final_a_technical_one_is_undone() {
    use webxdc_realtime_xmpp::RemovalReason;
    let removed = |code: u16| {
        format!(
            "<presence xmlns='jabber:client' type='unavailable' from='{ROOM}/alice-phone' to='{ME}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
             <status code='{code}'/><status code='110'/></x></presence>"
        )
    };
    for (code, reason, rejoined) in [
        (307, RemovalReason::Kicked, false),
        (301, RemovalReason::Banned, false),
        (332, RemovalReason::ServiceShutdown, true),
    ] {
        let mut e = Engine::new(EngineConfig::default());
        e.set_online(ME.parse().unwrap(), false);
        e.join_room(room(), "alice-phone");
        e.handle_xml(&format!(
            "<presence xmlns='jabber:client' from='{ROOM}/alice-phone' to='{ME}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>"
        ));
        let (c1, in1) = e.join(Chat::Group(room()), "t1").unwrap();
        let (_c2, in2) = e.join(Chat::Group(room()), "t2").unwrap();
        let (_d, direct) = e
            .join(Chat::Direct("bob@example.org".parse().unwrap()), "t1")
            .unwrap();
        while e.poll_transmit().is_some() {}
        e.handle_xml(&removed(code));
        for inbox in [&in1, &in2] {
            if rejoined {
                // Technical: entered again at once, the channels not bothered.
                assert!(inbox.try_recv().is_err());
            } else {
                assert_eq!(inbox.try_recv(), Ok(Delivery::Removed(reason.clone())));
            }
        }
        let again_at_once = std::iter::from_fn(|| e.poll_transmit())
            .filter(|el| el.name() == "presence")
            .count();
        assert_eq!(again_at_once == 1, rejoined, "status {code}");
        assert!(
            direct.try_recv().is_err(),
            "a 1:1 channel is not in the room"
        );
        assert!(matches!(e.send(c1, b"x"), Err(SendError::RoomNotJoined(_))));
        // A new session enters again only what the room did not decide.
        e.set_offline();
        e.set_online(ME.parse().unwrap(), false);
        let presences = std::iter::from_fn(|| e.poll_transmit())
            .filter(|el| el.name() == "presence")
            .count();
        assert_eq!(presences == 1, rejoined, "status {code}");
        // Entering again is always possible.
        e.join_room(room(), "alice-phone");
        assert_eq!(e.room_state(&room()), Some(RoomState::Joining));
    }
}

/// docs/wire-format.md §3 rule 1: one webxdc `<x/>` with one `<data/>`.
/// Two `<data/>`s in one `<x/>` and two `<x/>`s with one `<data/>` each
/// are refused alike (before, the second shape was delivered, with the
/// first `<x/>` as the payload), and so is a status update beside a frame.
#[test]
fn two_data_or_two_x_elements_are_refused_alike() {
    let mut e = engine();
    let (_ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    let head = format!(
        "<message xmlns='jabber:client' type='groupchat' from='{ROOM}/bob' to='{ME}'>\
         <thread>t</thread><no-store xmlns='urn:xmpp:hints'/>"
    );
    let x = |inner: &str| format!("<x xmlns='urn:xmpp:webxdc:0'>{inner}</x>");
    let data = "<data>aGk=</data>";
    let json = "<json xmlns='urn:xmpp:json:0'>1</json>";
    let cases = [
        (x(&format!("{data}{data}")), WireError::AmbiguousData(2)),
        (format!("{}{}", x(data), x(data)), WireError::AmbiguousX(2)),
        (format!("{}{}", x(json), x(data)), WireError::AmbiguousX(2)),
        (format!("{}{}", x(data), x("")), WireError::AmbiguousX(2)),
    ];
    for (body, error) in cases {
        let xml = format!("{head}{body}</message>");
        assert_eq!(
            e.handle_xml(&xml),
            Handled::Rejected(Rejection::Malformed(error)),
            "{xml}"
        );
    }
    assert!(inbox.try_recv().is_err());
    assert!(
        e.poll().is_none(),
        "no event either (no update, no instance)"
    );
    // One of each is still a frame.
    assert!(matches!(
        e.handle_xml(&format!("{head}{}</message>", x(data))),
        Handled::Delivered(_)
    ));
}

/// A stanza nested thousands of levels deep (well inside a server's
/// 256 KiB stanza limit) overflowed the stack of a 2 MiB thread, Rust's
/// default for spawned threads, in the typed parsers, and the overflow
/// aborts the whole process (found by reliability/src/fuzz.rs). Now it is
/// refused before anything recurses into it, through every input.
#[test]
fn deeply_nested_stanzas_are_refused_without_overflowing_the_stack() {
    use webxdc_realtime_xmpp::minidom::Element;
    use xmpp_parsers::message::Message;
    use xmpp_parsers::stanza::Stanza;
    let deep = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    let frame = |inside: &str| {
        format!(
            "<message xmlns='jabber:client' type='groupchat' from='{ROOM}/bob' to='{ME}'>\
             <thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data>{inside}</x></message>"
        )
    };
    let too_deep = Handled::Rejected(Rejection::Malformed(WireError::TooDeep));
    let outcome = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut e = engine();
            let (ch, _inbox) = e.join(Chat::Group(room()), "t").unwrap();
            // 12000 levels: a few times what overflowed before (parsing
            // is slower than linear in the depth, so not more).
            let mut got = vec![e.handle_xml(&frame(&deep(12_000)))];
            let presence = format!(
                "<presence xmlns='jabber:client' from='{ROOM}/bob'>{}</presence>",
                deep(12_000)
            );
            got.push(e.handle_xml(&presence));
            // A typed stanza whose payload is deep (as an embedder's own
            // parser may hand it over): taken apart without recursion.
            let shallow: Element = frame("").parse().unwrap();
            let mut m = Message::try_from(shallow).unwrap();
            let result = format!(
                "<result xmlns='urn:xmpp:mam:2' queryid='q' id='1'>\
                 <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>{}\
                 </message></forwarded></result>",
                deep(5_000)
            );
            m.payloads.push(result.parse().unwrap());
            got.push(e.handle_stanza(Stanza::Message(m)));
            // Nested a little, as real stanzas are: still delivered.
            got.push(e.handle_xml(&frame(&deep(20))));
            (got, ch)
        })
        .unwrap()
        .join()
        .expect("no stack overflow, no panic");
    let (got, ch) = outcome;
    assert_eq!(
        got,
        vec![
            too_deep.clone(),
            too_deep.clone(),
            too_deep,
            Handled::Delivered(ch)
        ]
    );
}

/// A re-entry refused for a reason that may pass (a room service that is
/// still starting after the server restarted) is asked again when the
/// embedder says so, the channels untold; after `REENTRY_ATTEMPTS` such
/// refusals in a row it is final and every channel of the room is told.
/// A refusal by decision (banned) is final at once.
#[test]
fn a_refused_reentry_is_retried_only_when_the_refusal_may_pass() {
    use webxdc_realtime_xmpp::engine::REENTRY_ATTEMPTS;
    use webxdc_realtime_xmpp::{ErrorCondition, RemovalReason};

    let refuse = |e: &mut Engine, condition: &str| {
        e.handle_xml(&format!(
            "<presence xmlns='jabber:client' type='error' from='{ROOM}/alice-phone'>\
             <error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
        ));
    };
    let reconnect = |e: &mut Engine| {
        e.set_offline();
        e.set_online("alice@example.org/new".parse().unwrap(), false);
        while e.poll_transmit().is_some() {}
    };
    let mut e = engine();
    let (_ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    reconnect(&mut e);
    while inbox.try_recv().is_ok() {}
    while e.poll_event().is_some() {}

    for n in 1..REENTRY_ATTEMPTS {
        refuse(&mut e, "item-not-found");
        assert_eq!(e.reentry_refused(&room()), Some(n), "refusal {n}");
        assert!(inbox.try_recv().is_err(), "the channel is not told yet");
        e.retry_reentry(&room());
        let p = e.poll_transmit().expect("the join is sent again");
        assert_eq!(p.name(), "presence");
        assert_eq!(e.room_state(&room()), Some(RoomState::Joining));
    }
    refuse(&mut e, "item-not-found");
    assert_eq!(e.reentry_refused(&room()), None);
    assert_eq!(
        inbox.try_recv().unwrap(),
        Delivery::Removed(RemovalReason::Refused(ErrorCondition::ItemNotFound))
    );
    e.retry_reentry(&room());
    assert!(
        e.poll_transmit().is_none(),
        "a final refusal is not retried"
    );

    // Entering again (the app asks) starts over; a decision is final at once.
    e.join_room(room(), "alice-phone");
    e.handle_xml(&format!(
        "<presence xmlns='jabber:client' from='{ROOM}/alice-phone' to='alice@example.org/new'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>"
    ));
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    reconnect(&mut e);
    while inbox.try_recv().is_ok() {}
    refuse(&mut e, "forbidden");
    assert_eq!(e.reentry_refused(&room()), None);
    assert_eq!(
        inbox.try_recv().unwrap(),
        Delivery::Removed(RemovalReason::Banned)
    );
}
