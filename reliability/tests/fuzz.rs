//! Part 1 at the quick scale, and proof that its validator can say no (so
//! that its zero invalid deliveries mean something).

use std::collections::{HashMap, HashSet};

use reliability::fuzz::{validate_delivery, Model};
use reliability::report::assert_held;
use reliability::Scale;
use webxdc_realtime_xmpp::engine::{Chat, Engine, EngineConfig};
use webxdc_realtime_xmpp::jid::{BareJid, Jid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_stanzas_quick() {
    let rows = reliability::fuzz::run(Scale::Quick).await;
    assert_held(&rows);
}

fn frame(from: &str, thread: &str, x: &str) -> String {
    format!(
        "<message xmlns='jabber:client' type='groupchat' from='{from}' to='me@example.org/d'>\
         <thread>{thread}</thread>{x}</message>"
    )
}

#[test]
fn the_validator_refuses_deliveries_that_do_not_match_their_input() {
    let room: BareJid = "team@conference.example.org".parse().unwrap();
    let mut engine = Engine::new(EngineConfig::default());
    let (t1, _inbox) = engine.join(Chat::Group(room.clone()), "t-1").unwrap();
    let (t2, _inbox2) = engine.join(Chat::Group(room.clone()), "t-2").unwrap();
    let model = Model {
        own: "me@example.org".parse().unwrap(),
        rooms: vec![(room.clone(), "me".into(), true)],
        channels: HashMap::from([
            (t1, (Chat::Group(room.clone()), "t-1".to_owned())),
            (t2, (Chat::Group(room.clone()), "t-2".to_owned())),
        ]),
        own_ids: HashSet::from(["mine".to_owned()]),
    };
    let bob: Jid = "team@conference.example.org/bob".parse().unwrap();
    let x = "<x xmlns='urn:xmpp:webxdc:0'><data>aGk=</data></x>";
    let good = frame(bob.as_str(), "t-1", x);
    assert_eq!(validate_delivery(&good, &model, t1, b"hi", &bob), Ok(()));

    let me: Jid = "team@conference.example.org/me".parse().unwrap();
    let stranger: Jid = "evil@conference.example.org/bob".parse().unwrap();
    let origin = "<origin-id xmlns='urn:xmpp:sid:0' id='mine'/>";
    let cases: Vec<(String, _, &[u8], &Jid, &str)> = vec![
        (good.clone(), t1, b"ho", &bob, "another payload"),
        (good.clone(), t2, b"hi", &bob, "another thread's channel"),
        (good.clone(), t1, b"hi", &me, "another sender"),
        (
            frame(me.as_str(), "t-1", x),
            t1,
            b"hi",
            &me,
            "our own echo (nick)",
        ),
        (
            frame(bob.as_str(), "t-1", &format!("{x}{origin}")),
            t1,
            b"hi",
            &bob,
            "our own echo (origin-id)",
        ),
        (
            frame(stranger.as_str(), "t-1", x),
            t1,
            b"hi",
            &stranger,
            "another room",
        ),
        (
            frame(room.as_str(), "t-1", x),
            t1,
            b"hi",
            &bob,
            "the room itself",
        ),
        (
            frame(bob.as_str(), "t-1", &x.replace("aGk=", "aGl=")),
            t1,
            b"hi",
            &bob,
            "non-zero pad bits",
        ),
        (
            frame(bob.as_str(), "t-1", &format!("{x}{x}")),
            t1,
            b"hi",
            &bob,
            "two <x/>",
        ),
        (frame(bob.as_str(), "", x), t1, b"hi", &bob, "no thread"),
        (
            good.replace("groupchat", "headline"),
            t1,
            b"hi",
            &bob,
            "headline",
        ),
        (
            good.replace("me@example.org/d", "other@example.org"),
            t1,
            b"hi",
            &bob,
            "to someone else",
        ),
        (
            "<presence xmlns='jabber:client'/>".into(),
            t1,
            b"hi",
            &bob,
            "not a message",
        ),
        (
            good[..good.len() - 3].to_owned(),
            t1,
            b"hi",
            &bob,
            "not XML",
        ),
    ];
    for (xml, channel, data, from, what) in cases {
        assert!(
            validate_delivery(&xml, &model, channel, data, from).is_err(),
            "the validator accepted {what}: {xml}"
        );
    }
}
