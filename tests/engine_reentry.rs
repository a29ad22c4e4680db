//! The engine alone (no network, no runtime, no clock): re-entries that get
//! no answer are timed by the embedder and asked again, and a room that
//! bounces our groupchat messages because it no longer has us is entered
//! again. The cluster tests (`tests/cluster.rs`) show both on a real
//! ejabberd cluster.

use webxdc_realtime_xmpp::engine::{
    Chat, Engine, EngineConfig, EngineEvent, RoomState, REENTRY_ATTEMPTS,
};
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{ConnectionEvent, Delivery, ErrorCondition, RemovalReason, SendError};

const ME: &str = "alice@example.org/phone";
const ROOM: &str = "team@conference.example.org";
const OTHER_ROOM: &str = "other@conference.example.org";

fn room() -> BareJid {
    ROOM.parse().unwrap()
}

/// An online engine that is in ROOM as "alice-phone", with one channel
/// there; nothing left to poll.
fn engine() -> (
    Engine,
    webxdc_realtime_xmpp::engine::ChannelId,
    webxdc_realtime_xmpp::Inbox,
) {
    let mut e = Engine::new(EngineConfig::default());
    e.set_online(ME.parse().unwrap(), false);
    e.adopt_room(room(), "alice-phone");
    let (ch, inbox) = e.join(Chat::Group(room()), "t").unwrap();
    drain(&mut e);
    (e, ch, inbox)
}

/// Empties every output queue of the engine; returns how many join (or
/// other) presences were to be sent.
fn drain(e: &mut Engine) -> usize {
    let presences = std::iter::from_fn(|| e.poll_transmit())
        .filter(|el| el.name() == "presence")
        .count();
    while e.poll_event().is_some() {}
    while e.poll_reentry_watch().is_some() {}
    presences
}

fn self_presence(room: &str) -> String {
    format!(
        "<presence xmlns='jabber:client' from='{room}/alice-phone' to='{ME}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>"
    )
}

fn shutdown_332() -> String {
    format!(
        "<presence xmlns='jabber:client' type='unavailable' from='{ROOM}/alice-phone' to='{ME}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
         <status code='332'/><status code='110'/></x></presence>"
    )
}

/// A bounce of one of our groupchat frames from `from`, with the frame
/// inside (as ejabberd sends it) or without (`bare`).
fn bounce(from: &str, condition: &str, with_frame: bool) -> String {
    let frame = if with_frame {
        "<thread>t</thread><x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x>"
    } else {
        ""
    };
    format!(
        "<message xmlns='jabber:client' type='error' from='{from}' to='{ME}'>{frame}\
         <error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
}

/// Every delivery waiting in `inbox`.
fn deliveries(inbox: &webxdc_realtime_xmpp::Inbox) -> Vec<Delivery> {
    std::iter::from_fn(|| inbox.try_recv().ok()).collect()
}

/// After a 332 the room is entered again at once and the re-entry handed
/// out to be timed; unanswered after the wait it is asked again under the
/// refusal policy, and after `REENTRY_ATTEMPTS` silences in a row the
/// channel is told the room is gone (`NoAnswer`), never left waiting.
#[test]
fn an_unanswered_reentry_is_asked_again_then_reported() {
    let (mut e, _ch, inbox) = engine();
    e.handle_xml(&shutdown_332());
    let p = e.poll_transmit().expect("entered again at once");
    assert_eq!(p.name(), "presence");
    let mut watch = e.poll_reentry_watch().expect("the re-entry is timed");
    assert_eq!(watch.room(), &room());
    assert!(e.poll_reentry_watch().is_none(), "one watch per re-entry");
    while e.poll_event().is_some() {}

    for n in 1..REENTRY_ATTEMPTS {
        assert!(e.reentry_unanswered(&watch), "silence {n} is asked again");
        assert_eq!(e.reentry_refused(&room()), Some(n));
        assert_eq!(e.room_state(&room()), Some(RoomState::NotJoined));
        assert!(
            e.poll_transmit().is_none(),
            "not before the embedder's wait"
        );
        assert!(inbox.try_recv().is_err(), "the channel is not told yet");
        // A second call for the same watch (a stale timer) does nothing.
        assert!(!e.reentry_unanswered(&watch));
        e.retry_reentry(&room());
        let p = e.poll_transmit().expect("the join is sent again");
        assert_eq!(p.name(), "presence");
        assert_eq!(p.attr("to"), Some(&*format!("{ROOM}/alice-phone")));
        watch = e.poll_reentry_watch().expect("the retry is timed too");
    }
    assert!(!e.reentry_unanswered(&watch), "the last silence is final");
    assert_eq!(e.reentry_refused(&room()), None);
    assert_eq!(
        deliveries(&inbox),
        [Delivery::Removed(RemovalReason::NoAnswer)]
    );
    let left: Vec<EngineEvent> = std::iter::from_fn(|| e.poll_event()).collect();
    assert!(
        left.contains(&EngineEvent::RoomLeft {
            room: room(),
            reason: RemovalReason::NoAnswer
        }),
        "{left:?}"
    );
    e.retry_reentry(&room());
    assert!(e.poll_transmit().is_none(), "not asked again by itself");
    // Nor at the next new session.
    e.set_offline();
    e.set_online(ME.parse().unwrap(), false);
    assert_eq!(
        drain(&mut e),
        0,
        "a room that never answered is not entered again"
    );
}

/// A watch does nothing once its re-entry was answered (joined, or refused
/// and so already under the refusal policy), or a later re-entry replaced
/// it; a first join, which the application waits for itself, is not
/// watched.
#[test]
fn an_answered_or_superseded_reentry_is_left_alone() {
    let (mut e, _ch, inbox) = engine();
    e.handle_xml(&shutdown_332());
    let watch = e.poll_reentry_watch().expect("timed");
    drain(&mut e);
    e.handle_xml(&self_presence(ROOM));
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    assert!(!e.reentry_unanswered(&watch), "answered: nothing to do");
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    assert!(e.poll_transmit().is_none());

    // Two re-entries in a row (a 332, then a new session): only the
    // latest one's watch counts.
    e.handle_xml(&shutdown_332());
    let old = e.poll_reentry_watch().expect("timed");
    e.set_offline();
    e.set_online(ME.parse().unwrap(), false);
    let new = e
        .poll_reentry_watch()
        .expect("the new session's re-entry is timed");
    assert!(e.poll_reentry_watch().is_none());
    drain(&mut e);
    assert!(!e.reentry_unanswered(&old), "superseded");
    assert_eq!(e.room_state(&room()), Some(RoomState::Joining));
    assert!(e.reentry_unanswered(&new));
    assert_eq!(e.reentry_refused(&room()), Some(1));

    // Offline, a watch does nothing; a resumed session times the re-entry
    // under way again.
    e.retry_reentry(&room());
    let watch = e.poll_reentry_watch().expect("timed");
    drain(&mut e);
    e.set_offline();
    assert!(!e.reentry_unanswered(&watch));
    e.set_online(ME.parse().unwrap(), true);
    let again = e.poll_reentry_watch().expect("timed again after resuming");
    assert_eq!(again, watch, "the same re-entry");
    assert!(e.reentry_unanswered(&again));
    while inbox.try_recv().is_ok() {}

    // A first join is not watched.
    let mut e = Engine::new(EngineConfig::default());
    e.set_online(ME.parse().unwrap(), false);
    e.join_room(OTHER_ROOM.parse().unwrap(), "alice-phone");
    assert!(e.poll_transmit().is_some());
    assert!(e.poll_reentry_watch().is_none());
}

/// A groupchat frame bounced from the room itself with `not-acceptable`
/// ("only occupants may send") or `item-not-found` (no such room): the
/// room no longer has us. The bounce is reported, the room entered again
/// at once (timed like any re-entry) and its channels told as for a
/// reconnection; a second bounce meanwhile changes nothing.
#[test]
fn a_bounce_saying_the_room_lost_us_enters_it_again() {
    for (condition, expected) in [
        ("not-acceptable", ErrorCondition::NotAcceptable),
        ("item-not-found", ErrorCondition::ItemNotFound),
    ] {
        for with_frame in [true, false] {
            let what = format!("{condition}, frame inside: {with_frame}");
            let (mut e, ch, inbox) = engine();
            let (_direct, direct) = e
                .join(Chat::Direct("bob@example.org".parse().unwrap()), "t")
                .unwrap();
            e.handle_xml(&bounce(ROOM, condition, with_frame));
            let events: Vec<EngineEvent> = std::iter::from_fn(|| e.poll_event()).collect();
            assert_eq!(
                events,
                [EngineEvent::SendBounced {
                    chat: Chat::Group(room()),
                    condition: expected.clone()
                }],
                "{what}"
            );
            assert_eq!(e.room_state(&room()), Some(RoomState::Joining), "{what}");
            let p = e.poll_transmit().expect("entered again at once");
            assert_eq!(p.name(), "presence", "{what}");
            assert_eq!(p.attr("to"), Some(&*format!("{ROOM}/alice-phone")));
            assert!(e.poll_transmit().is_none(), "{what}");
            assert_eq!(
                e.poll_reentry_watch().map(|w| w.room().clone()),
                Some(room()),
                "{what}"
            );
            assert_eq!(
                deliveries(&inbox),
                [Delivery::Connection(ConnectionEvent::Disconnected)],
                "{what}"
            );
            assert!(
                direct.try_recv().is_err(),
                "a 1:1 channel is not in the room"
            );
            assert!(matches!(e.send(ch, b"x"), Err(SendError::RoomNotJoined(_))));

            // The next frame's bounce, on its way before the answer.
            e.handle_xml(&bounce(ROOM, condition, with_frame));
            assert!(e.poll_transmit().is_none(), "{what}: one re-entry");
            assert!(inbox.try_recv().is_err(), "{what}");

            e.handle_xml(&self_presence(ROOM));
            assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
            assert_eq!(
                deliveries(&inbox),
                [Delivery::Connection(ConnectionEvent::Reconnected {
                    resumed: false
                })],
                "{what}"
            );
            assert!(e.send(ch, b"x").is_ok(), "{what}");
            // Back in: the next confirmation of our presence says nothing.
            e.handle_xml(&self_presence(ROOM));
            assert!(inbox.try_recv().is_err(), "{what}");
        }
    }
}

/// Bounces that do not say the room lost us leave it joined: from an
/// occupant (a private message, not a groupchat one), from a room we are
/// not in, from another room we are in (that one is entered again, not
/// ours), and conditions that do not mean "not an occupant"
/// (`service-unavailable` is ambiguous, XEP-0410 reads it as joined;
/// `forbidden` is a moderated room's answer to a visitor who stays in it).
#[test]
fn other_bounces_leave_the_room_joined() {
    let (mut e, ch, inbox) = engine();
    let other: BareJid = OTHER_ROOM.parse().unwrap();
    let cases = [
        (format!("{ROOM}/bob"), "not-acceptable"),
        (format!("{ROOM}/bob"), "item-not-found"),
        (
            "elsewhere@conference.example.org".to_owned(),
            "item-not-found",
        ),
        (ROOM.to_owned(), "service-unavailable"),
        (ROOM.to_owned(), "forbidden"),
        (ROOM.to_owned(), "remote-server-not-found"),
    ];
    for (from, condition) in &cases {
        for with_frame in [true, false] {
            e.handle_xml(&bounce(from, condition, with_frame));
            assert_eq!(
                e.room_state(&room()),
                Some(RoomState::Joined),
                "{from} {condition}"
            );
            assert!(e.poll_transmit().is_none(), "{from} {condition}");
            assert!(e.poll_reentry_watch().is_none(), "{from} {condition}");
            assert!(inbox.try_recv().is_err(), "{from} {condition}");
        }
    }
    while e.poll_event().is_some() {}

    // Another room of ours lost us: that one is entered again.
    e.join_room(other.clone(), "alice-phone");
    e.handle_xml(&self_presence(OTHER_ROOM));
    drain(&mut e);
    e.handle_xml(&bounce(OTHER_ROOM, "not-acceptable", true));
    assert_eq!(e.room_state(&other), Some(RoomState::Joining));
    assert_eq!(e.room_state(&room()), Some(RoomState::Joined));
    let p = e.poll_transmit().expect("the other room is entered again");
    assert_eq!(p.attr("to"), Some(&*format!("{OTHER_ROOM}/alice-phone")));
    assert!(inbox.try_recv().is_err(), "our channel is not in that room");
    assert!(e.send(ch, b"x").is_ok());
}
