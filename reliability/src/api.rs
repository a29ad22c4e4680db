//! Part 5: bad input at the API, against real servers.
//!
//! Every case calls the public API the way a careless or hostile caller
//! would, and checks that the answer is the typed error the docs
//! (`docs/errors.md`) name, and that it comes in bounded time:
//!
//! * thread ids (app instance ids) that are empty, blank, hold characters
//!   XML cannot carry, or are over [`MAX_THREAD`] bytes, at every API that
//!   takes one; the longest thread allowed beside the largest payload
//!   still fits the servers' stanza limits; an incoming frame whose thread
//!   is over the limit is never delivered nor announced;
//! * JIDs that do not parse, a domain where a room is expected, an account
//!   JID without a local part;
//! * rooms that do not exist: on a MUC service that does not exist, on the
//!   server's own domain (no MUC service at all), and a room that refuses
//!   us (members-only);
//! * every method of every handle after `shutdown().await`;
//! * the demo bot, with an occupant inventing 1,000 thread ids.
//!
//! The cases are cheap, so the quick and the full scale are the same.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::timeout;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::wire::{self, ChatKind, MAX_THREAD};
use webxdc_realtime_xmpp::{
    Client, ClientEvent, Config, ConnectError, Delivery, EngineEvent, GroupError, JoinError,
    SendError, SharedApp, StatusUpdate, TryRecvError, UpdateError, UploadError, UploadService,
    MAX_PAYLOAD,
};
use xmpp_test_server::raw::RawClient;
use xmpp_test_server::{ServerKind, TestServer};

use crate::report::{Part, Row};
use crate::setup::{self, barrier, client, config, join, name, room, PATIENCE};
use crate::Scale;

/// The demo bot's serving code, compiled here as the examples compile it,
/// so that its cap is tested against a real server.
#[allow(dead_code)]
#[path = "../../examples/common/mod.rs"]
mod bot;

/// How long a room may stay silent in the cases where no answer is the
/// expected answer (a presence to an account that is not there): short,
/// so that the case is quick; the default is 15 s.
const SILENT_ROOM_TIMEOUT: Duration = Duration::from_secs(4);

/// Invented thread ids the hostile occupant sends to the bot.
const INVENTED_THREADS: usize = 1000;

/// Of those, how many get a second frame (after all the first ones).
const REPEATED: usize = 100;

/// Runs this part at `scale` (both scales are the same: it is cheap).
pub async fn run(scale: Scale) -> Vec<Row> {
    let _ = scale;
    let mut rows = Vec::new();
    let prosody = setup::server(ServerKind::Prosody);
    rows.extend(threads(&prosody).await);
    rows.push(longest_thread_fits(&prosody).await);
    rows.push(incoming_thread_over_the_limit(&prosody).await);
    rows.extend(jids(&prosody).await);
    rows.extend(missing_rooms(&prosody).await);
    rows.extend(after_shutdown(&prosody).await);
    rows.push(bot_cap(&prosody).await);
    drop(prosody);
    let ejabberd = setup::server(ServerKind::Ejabberd);
    rows.push(longest_thread_fits(&ejabberd).await);
    rows.extend(missing_rooms(&ejabberd).await);
    rows
}

/// Runs `f` under the hang guard `limit`: its output (`None` on a hang)
/// and how long it took.
async fn timed<F: Future>(limit: Duration, f: F) -> (Option<F::Output>, Duration) {
    let start = Instant::now();
    let out = timeout(limit, f).await.ok();
    (out, start.elapsed())
}

/// A duration for the table.
fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A raw occupant of `room` on `server`, logged in as `account`.
fn raw_occupant(server: &TestServer, account: &str, room: &BareJid) -> RawClient {
    let (jid, password) = server.account(account).expect("account");
    let mut raw = RawClient::login(server.c2s_addr(), server.domain(), &jid, &password, None)
        .expect("raw client logs in");
    raw.send(&format!(
        "<presence to='{room}/{account}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    ))
    .expect("raw join");
    raw.read_until("the raw occupant's self-presence", |t| {
        t.contains("code='110'") || t.contains("code=\"110\"")
    })
    .expect("raw occupant in the room");
    raw
}

/// A realtime frame into `room` for `thread`, as a raw client writes it.
fn raw_frame(room: &BareJid, thread: &str, data_b64: &str) -> String {
    format!(
        "<message to='{room}' type='groupchat'><thread>{thread}</thread>\
         <no-store xmlns='urn:xmpp:hints'/>\
         <x xmlns='urn:xmpp:webxdc:0'><data>{data_b64}</data></x></message>"
    )
}

// ----- thread ids --------------------------------------------------------

/// Every API that takes a thread refuses bad ones with the typed error,
/// before anything touches the network.
async fn threads(server: &TestServer) -> Vec<Row> {
    let alice = client(server, "thread-alice").await;
    let r = room(server, "threads");
    let group = alice.group(r.clone()).await.expect("room joined");
    let direct = alice.direct(format!("bob@{}", server.domain()).parse().unwrap());
    let long = |n: usize| "t".repeat(n);
    let cases: Vec<(&str, String, bool)> = vec![
        // (what, thread, whether the error is "too long")
        ("empty", String::new(), false),
        ("blank (spaces, tab)", " \t ".into(), false),
        ("NUL", "a\u{0}b".into(), false),
        ("control U+001B", "a\u{1b}b".into(), false),
        ("U+FFFE", "a\u{fffe}".into(), false),
        ("1025 bytes", long(MAX_THREAD + 1), true),
        ("100 KB", long(100_000), true),
    ];
    let mut rows = Vec::new();
    for (what, thread, too_long) in cases {
        let len = thread.len();
        let join_ok = |e: &JoinError| match e {
            JoinError::ThreadTooLong { len: l } => too_long && *l == len,
            JoinError::InvalidThread => !too_long,
            _ => false,
        };
        let update_ok = |e: &UpdateError| match e {
            UpdateError::ThreadTooLong { len: l } => too_long && *l == len,
            UpdateError::InvalidThread => !too_long,
            _ => false,
        };
        let start = Instant::now();
        let j = group.join_realtime_channel(&thread).map(|_| ());
        let d = direct.join_realtime_channel(&thread).map(|_| ());
        let guard = PATIENCE;
        let (su, _) = timed(guard, group.send_update(&thread, &StatusUpdate::new("{}"))).await;
        let (up, _) = timed(guard, group.updates(&thread)).await;
        let up = up.map(|r| r.map(|_| ()));
        let app = SharedApp {
            thread: thread.clone(),
            url: "https://example.org/app.xdc".into(),
            name: Some("app.xdc".into()),
            size: None,
            media_type: None,
            sha256: None,
        };
        let (sh, _) = timed(guard, group.share_app(&app)).await;
        let took = start.elapsed();
        let held = j.as_ref().err().is_some_and(join_ok)
            && d.as_ref().err().is_some_and(join_ok)
            && su
                .as_ref()
                .is_some_and(|r| r.as_ref().err().is_some_and(update_ok))
            && up
                .as_ref()
                .is_some_and(|r| r.as_ref().err().is_some_and(update_ok))
            && sh
                .as_ref()
                .is_some_and(|r| r.as_ref().err().is_some_and(update_ok));
        rows.push(Row::new(
            Part::Api,
            format!("Prosody: thread {what} at join (group, 1:1), send_update, updates, share_app"),
            format!(
                "join {j:?}; 1:1 join {d:?}; send_update {}; updates {}; share_app {}; all five in {}",
                show(&su),
                show(&up),
                show(&sh),
                ms(took)
            ),
            held,
        ));
    }
    // The client is unharmed: the longest thread allowed joins.
    let at_limit = group.join_realtime_channel(&long(MAX_THREAD));
    rows.push(Row::new(
        Part::Api,
        format!("Prosody: thread of exactly {MAX_THREAD} bytes, after the refusals"),
        format!("join {:?}", at_limit.as_ref().map(|_| "Ok")),
        at_limit.is_ok(),
    ));
    alice.shutdown().await;
    rows
}

/// A hang-guarded result for the table.
fn show<T, E: std::fmt::Debug>(r: &Option<Result<T, E>>) -> String {
    match r {
        None => "hung".into(),
        Some(Ok(_)) => "Ok".into(),
        Some(Err(e)) => format!("{e:?}"),
    }
}

/// The longest thread allowed, made of the character XML escapes the most
/// (`&` is `&amp;` on the wire), beside the largest payload: the stanza
/// stays under the server's limit and arrives exactly.
async fn longest_thread_fits(server: &TestServer) -> Row {
    let kind = server.kind();
    let thread = "&".repeat(MAX_THREAD);
    let r = room(server, "longest-thread");
    let a = client(server, "long-alice").await;
    let b = client(server, "long-bob").await;
    let mut ca = join(&a, &r, &thread).await;
    let mut cb = join(&b, &r, &thread).await;
    let payload: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
    let stanza_bytes = wire::encode(&r, ChatKind::Group, &thread, &payload, "0123456789abcdef")
        .map(|m| String::from(&webxdc_realtime_xmpp::minidom::Element::from(m)).len())
        .unwrap_or(0);
    let connected = barrier(&ca, &mut [&mut cb]).await;
    let sent = ca.send(&payload).await;
    let (got, took) = timed(PATIENCE, async {
        loop {
            match cb.next().await {
                Some(Delivery::Payload(p)) if p.data.len() == MAX_PAYLOAD => return Some(p.data),
                Some(Delivery::Payload(_)) => continue, // a late barrier marker
                Some(Delivery::Connection(c)) => {
                    tracing::warn!(?c, "connection event during the largest stanza");
                    return None;
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    let exact = got.flatten().is_some_and(|d| d == payload);
    // The sender's stream is still up: a server that closed it for size
    // would keep the answer from arriving.
    let after = barrier(&cb, &mut [&mut ca]).await;
    let held = connected.is_ok() && sent.is_ok() && exact && after.is_ok();
    a.shutdown().await;
    b.shutdown().await;
    Row::new(
        Part::Api,
        format!(
            "{}: thread of {MAX_THREAD} × '&' (escaped ×5) + a {MAX_PAYLOAD}-byte payload",
            name(kind)
        ),
        format!(
            "stanza {stanza_bytes} bytes as we write it (limit 262144); send {:?}, delivered exactly: {exact} in {}; sender still connected (an answer came back): {}",
            sent,
            ms(took),
            after.is_ok()
        ),
        held,
    )
}

/// A frame whose thread is over the limit, sent by a raw occupant, is not
/// delivered and not announced; the frame after it is.
async fn incoming_thread_over_the_limit(server: &TestServer) -> Row {
    let r = room(server, "incoming-long-thread");
    let bob = client(server, "incoming-bob").await;
    let mut events = bob.events();
    bob.group(r.clone()).await.expect("room joined");
    let long = "x".repeat(MAX_THREAD + 1);
    let (r2, l2) = (r.clone(), long.clone());
    let (jid, password) = server.account("incoming-mallory").expect("account");
    let (addr, domain) = (server.c2s_addr(), server.domain().to_owned());
    let sender = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::login(addr, &domain, &jid, &password, None)?;
        raw.send(&format!(
            "<presence to='{r2}/mallory'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))?;
        raw.read_until("self-presence", |t| {
            t.contains("code='110'") || t.contains("code=\"110\"")
        })?;
        // In this order from one sender: the room keeps it.
        raw.send(&raw_frame(&r2, &l2, "aGk="))?;
        raw.send(&raw_frame(&r2, "after-the-long-one", "aGk="))?;
        Ok::<_, std::io::Error>(raw)
    });
    let (seen, took) = timed(PATIENCE, async {
        let mut long_announced = false;
        while let Some(ev) = events.recv().await {
            if let ClientEvent::Room(EngineEvent::UnjoinedInstance { thread, .. }) = ev {
                if thread.len() > MAX_THREAD {
                    long_announced = true;
                } else if thread == "after-the-long-one" {
                    return Some(long_announced);
                }
            }
        }
        None
    })
    .await;
    let raw = sender.await.ok().and_then(Result::ok);
    let held = raw.is_some() && seen.flatten() == Some(false);
    if let Some(raw) = raw {
        raw.close();
    }
    bob.shutdown().await;
    Row::new(
        Part::Api,
        format!(
            "Prosody: incoming frame with a {}-byte thread from an occupant",
            MAX_THREAD + 1
        ),
        format!(
            "over-long thread announced: {}; the next frame announced after {}",
            match seen.flatten() {
                Some(a) => a.to_string(),
                None => "(the next frame never came)".into(),
            },
            ms(took)
        ),
        held,
    )
}

// ----- JIDs --------------------------------------------------------------

async fn jids(server: &TestServer) -> Vec<Row> {
    let mut rows = Vec::new();
    // Strings that are not bare JIDs: the jid crate's typed error.
    let muc = server.muc_domain();
    let bad = [
        format!("room@{muc}/nick"),
        "@example.org".to_owned(),
        "a@b@c".to_owned(),
        String::new(),
        format!("{}@{muc}", "r".repeat(1100)),
    ];
    let results: Vec<String> = bad
        .iter()
        .map(|s| match s.parse::<BareJid>() {
            Ok(j) => format!("{:.20}…: parsed as {j:.30}", s),
            Err(e) => format!("'{:.24}': {e}", s),
        })
        .collect();
    let all_refused = bad.iter().all(|s| s.parse::<BareJid>().is_err());
    rows.push(Row::new(
        Part::Api,
        "room and account strings that are not bare JIDs (full JID, no local part before @, two @, empty, 1100-byte local part)",
        results.join("; "),
        all_refused,
    ));

    // A domain where a room is expected.
    let alice = client(server, "jid-alice").await;
    let mut figures = Vec::new();
    let mut held = true;
    for domain in [muc.to_owned(), server.domain().to_owned()] {
        let (r, took) = timed(PATIENCE, alice.group(domain.parse().unwrap())).await;
        let ok = matches!(&r, Some(Err(GroupError::NotARoom(_))));
        held &= ok && took < Duration::from_secs(1);
        figures.push(format!("group({domain}): {} in {}", show(&r), ms(took)));
    }
    rows.push(Row::new(
        Part::Api,
        "Prosody: Client::group with a domain only (the MUC service, the server)",
        figures.join("; "),
        held,
    ));

    // A domain-only contact is allowed (a gateway or a bot component can
    // be one): what the server does with a frame to itself is reported.
    let mut events = alice.events();
    let contact: BareJid = server.domain().parse().unwrap();
    let channel = alice.direct(contact).join_realtime_channel("t");
    let sent = match &channel {
        Ok(ch) => Some(ch.send(b"to the server itself").await),
        Err(_) => None,
    };
    let (answer, took) = timed(SILENT_ROOM_TIMEOUT, async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Room(EngineEvent::SendBounced { condition, .. })) => {
                    return Some(condition)
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    // Still usable afterwards.
    let after = alice.group(room(server, "after-domain-contact")).await;
    rows.push(Row::new(
        Part::Api,
        "Prosody: DirectChat with a domain-only contact (the server): join, send",
        format!(
            "join {:?}; send {sent:?}; the server's answer: {} after {}; the client still enters a room: {}",
            channel.as_ref().map(|_| "Ok"),
            match &answer {
                Some(Some(c)) => format!("bounce ({c})"),
                Some(None) => "client closed".into(),
                None => "none".into(),
            },
            ms(took),
            after.is_ok()
        ),
        channel.is_ok() && matches!(sent, Some(Ok(()))) && after.is_ok(),
    ));
    drop(channel);
    alice.shutdown().await;

    // Nicks that cannot be a resource (empty, over 1023 bytes, a control
    // character): the room's address with that nick does not parse.
    let mut figures = Vec::new();
    let mut held = true;
    for (i, (what, nick)) in [
        ("empty", String::new()),
        ("1100 bytes", "n".repeat(1100)),
        ("a control character", "a\u{7}b".to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = config(server, &format!("jid-nick-{i}")).with_nick(nick);
        let c = Client::connect(cfg).await;
        let (r, took) = match &c {
            Ok(c) => timed(PATIENCE, c.group(room(server, "nick-room"))).await,
            Err(_) => (None, Duration::ZERO),
        };
        held &= match (&c, &r) {
            (Err(ConnectError::Config(_)), _) => true,
            (Ok(_), Some(Err(GroupError::Refused { .. }))) => took < Duration::from_secs(1),
            _ => false,
        };
        figures.push(match &c {
            Err(e) => format!("{what}: connect {e:?}"),
            Ok(_) => format!("{what}: group {} in {}", show(&r), ms(took)),
        });
        if let Ok(c) = c {
            c.shutdown().await;
        }
    }
    rows.push(Row::new(
        Part::Api,
        "Prosody: Config::with_nick with a nick that cannot be a resource",
        figures.join("; "),
        held,
    ));

    // A resource that cannot be one.
    let cfg = config(server, "jid-resource").with_resource("");
    let (r, took) = timed(PATIENCE, Client::connect(cfg)).await;
    let ok = matches!(&r, Some(Err(ConnectError::Config(_))));
    if let Some(Ok(c)) = &r {
        c.shutdown().await;
    }
    rows.push(Row::new(
        Part::Api,
        "Prosody: Config::with_resource(\"\") then Client::connect",
        format!("{} in {}", show(&r), ms(took)),
        ok && took < Duration::from_secs(1),
    ));

    // An account JID without a local part.
    let (_, password) = server.account("jid-nobody").expect("account");
    let cfg = Config::new(server.domain().parse().unwrap(), password)
        .danger_plaintext_loopback_only(server.c2s_addr())
        .with_connect_timeout(Duration::from_secs(5));
    let (r, took) = timed(PATIENCE, Client::connect(cfg)).await;
    let ok = matches!(&r, Some(Err(ConnectError::Config(_))));
    if let Some(Ok(c)) = &r {
        c.shutdown().await;
    }
    rows.push(Row::new(
        Part::Api,
        "Prosody: Client::connect as a domain-only account JID",
        format!("{} in {}", show(&r), ms(took)),
        ok && took < Duration::from_secs(1),
    ));
    rows
}

// ----- rooms that do not exist -------------------------------------------

async fn missing_rooms(server: &TestServer) -> Vec<Row> {
    let kind = server.kind();
    let mut rows = Vec::new();
    let cfg = config(server, "rooms-alice").with_join_timeout(SILENT_ROOM_TIMEOUT);
    let alice = Client::connect(cfg).await.expect("client connects");
    let domain = server.domain();
    let cases: [(&str, String); 2] = [
        (
            "a MUC service that does not exist",
            format!("room@nosuch.{domain}"),
        ),
        (
            "the server's own domain (no MUC service)",
            format!("room@{domain}"),
        ),
    ];
    for (what, jid) in cases {
        let (r, took) = timed(PATIENCE, alice.group(jid.parse().unwrap())).await;
        // A typed refusal at once (the server refuses, or the library
        // knows our own domain holds no rooms), never the join timeout.
        let held = matches!(
            &r,
            Some(Err(GroupError::Refused { .. } | GroupError::NotARoom(_)))
        ) && took < SILENT_ROOM_TIMEOUT;
        rows.push(Row::new(
            Part::Api,
            format!(
                "{}: Client::group on {what} ({jid}), join timeout {:?}",
                name(kind),
                SILENT_ROOM_TIMEOUT
            ),
            format!("{} after {}", show(&r), ms(took)),
            held,
        ));
    }

    // A room that exists and refuses us: members-only, configured by its
    // owner (a raw client: the library has no room configuration API).
    let r = room(server, "members-only");
    let owner = {
        let (server_r, r2) = (server, r.clone());
        let mut raw = raw_occupant(server_r, "rooms-owner", &r2);
        let answer = raw
            .iq(
                "cfg1",
                &format!(
                    "<iq type='set' id='cfg1' to='{r2}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
                     <x xmlns='jabber:x:data' type='submit'>\
                     <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
                     <field var='muc#roomconfig_membersonly'><value>1</value></field>\
                     </x></query></iq>"
                ),
            )
            .unwrap_or_default();
        (
            raw,
            answer.contains("type='result'") || answer.contains("type=\"result\""),
        )
    };
    let (r_res, took) = timed(PATIENCE, alice.group(r.clone())).await;
    let held = owner.1
        && matches!(
            &r_res,
            Some(Err(GroupError::Refused { condition, .. })) if condition.name() == "registration-required"
        );
    rows.push(Row::new(
        Part::Api,
        format!(
            "{}: Client::group on a members-only room (its owner configured it)",
            name(kind)
        ),
        format!(
            "configured: {}; {} after {}",
            owner.1,
            show(&r_res),
            ms(took)
        ),
        held,
    ));
    owner.0.close();
    alice.shutdown().await;
    rows
}

// ----- after shutdown ----------------------------------------------------

/// How long a call after shutdown may take: it must answer at once.
const AFTER_SHUTDOWN: Duration = Duration::from_secs(5);

async fn after_shutdown(server: &TestServer) -> Vec<Row> {
    let r = room(server, "after-shutdown");
    let alice = client(server, "shut-alice").await;
    let mut events = alice.events();
    let group = alice.group(r.clone()).await.expect("room joined");
    let mut channel = group.join_realtime_channel("t").expect("channel joined");
    let mut updates = group.updates("t").await.expect("updates feed");
    alice.shutdown().await;

    let mut rows = Vec::new();
    let mut row = |method: &str, (out, took): (Option<String>, Duration), ok: bool| {
        let held = ok && out.is_some() && took < AFTER_SHUTDOWN;
        rows.push(Row::new(
            Part::Api,
            format!("Prosody: {method} after shutdown"),
            format!("{} in {}", out.unwrap_or_else(|| "hung".into()), ms(took)),
            held,
        ));
    };
    let g = AFTER_SHUTDOWN;

    let res = timed(g, alice.shutdown()).await;
    row(
        "Client::shutdown (again)",
        (res.0.map(|_| "returned".into()), res.1),
        true,
    );

    let res = timed(g, alice.group(r.clone())).await;
    let ok = matches!(res.0, Some(Err(GroupError::Closed)));
    row(
        "Client::group",
        (res.0.map(|r| format!("{:?}", r.map(|_| ()))), res.1),
        ok,
    );

    let res = timed(g, async {
        alice
            .direct(r.clone())
            .join_realtime_channel("t")
            .map(|_| ())
    })
    .await;
    let ok = matches!(res.0, Some(Err(JoinError::Closed)));
    row(
        "DirectChat::join_realtime_channel",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, alice.upload_service()).await;
    let ok = matches!(res.0, Some(Err(UploadError::Closed)));
    row(
        "Client::upload_service",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let service = UploadService {
        jid: format!("upload.{}", server.domain()).parse().unwrap(),
        max_size: None,
    };
    let res = timed(g, alice.request_upload_slot(&service, "a.xdc", 1, None)).await;
    let ok = matches!(res.0, Some(Err(UploadError::Closed)));
    row(
        "Client::request_upload_slot",
        (res.0.map(|r| format!("{:?}", r.map(|_| ()))), res.1),
        ok,
    );

    let res = timed(g, async {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (alice.jid(), alice.nick().to_owned())
        }))
        .is_ok()
    })
    .await;
    let ok = res.0 == Some(true);
    row(
        "Client::jid and Client::nick",
        (
            res.0.map(|ok| {
                if ok {
                    "answered".into()
                } else {
                    "panicked".into()
                }
            }),
            res.1,
        ),
        ok,
    );

    // Events: a reader subscribed before sees Closed, then the end; one
    // subscribed after sees the end at once.
    let res = timed(g, async {
        let mut seen = Vec::new();
        while let Some(ev) = events.recv().await {
            seen.push(ev);
        }
        seen
    })
    .await;
    let ok = res
        .0
        .as_ref()
        .is_some_and(|seen| seen.last() == Some(&ClientEvent::Closed));
    row(
        "Events::recv (subscribed before)",
        (
            res.0
                .map(|s| format!("{} events, last {:?}, then None", s.len(), s.last())),
            res.1,
        ),
        ok,
    );

    let res = timed(g, async {
        let mut late = alice.events();
        (late.recv().await, late.try_recv())
    })
    .await;
    let ok = matches!(&res.0, Some((None, Err(TryRecvError::Closed))));
    row(
        "Client::events + recv, try_recv (subscribed after)",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, async { group.join_realtime_channel("t2").map(|_| ()) }).await;
    let ok = matches!(res.0, Some(Err(JoinError::Closed)));
    row(
        "GroupChat::join_realtime_channel",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, group.send_update("t", &StatusUpdate::new("{}"))).await;
    let ok = matches!(res.0, Some(Err(UpdateError::Closed)));
    row(
        "GroupChat::send_update",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, group.updates("t")).await;
    let ok = matches!(res.0, Some(Err(UpdateError::Closed)));
    row(
        "GroupChat::updates",
        (res.0.map(|r| format!("{:?}", r.map(|_| ()))), res.1),
        ok,
    );

    let app = SharedApp {
        thread: "t".into(),
        url: "https://example.org/a.xdc".into(),
        name: None,
        size: None,
        media_type: None,
        sha256: None,
    };
    let res = timed(g, group.share_app(&app)).await;
    let ok = matches!(res.0, Some(Err(UpdateError::Closed)));
    row(
        "GroupChat::share_app",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, group.shared_apps()).await;
    let ok = matches!(res.0, Some(Err(UpdateError::Closed)));
    row(
        "GroupChat::shared_apps",
        (res.0.map(|r| format!("{:?}", r.map(|_| ()))), res.1),
        ok,
    );

    let res = timed(g, async { group.self_occupant() }).await;
    let ok = matches!(res.0, Some(None));
    row(
        "GroupChat::self_occupant",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, group.clone().leave()).await;
    row(
        "GroupChat::leave",
        (res.0.map(|_| "returned".into()), res.1),
        true,
    );

    let res = timed(g, channel.send(b"x")).await;
    let ok = matches!(res.0, Some(Err(SendError::Closed)));
    row(
        "Channel::send",
        (res.0.map(|r| format!("{r:?}")), res.1),
        ok,
    );

    let res = timed(g, async {
        let mut n = 0;
        while channel.recv().await.is_some() {
            n += 1;
        }
        (n, channel.try_recv(), channel.is_left())
    })
    .await;
    let ok = matches!(&res.0, Some((_, Err(TryRecvError::Closed), true)));
    row(
        "Channel::recv, try_recv, is_left",
        (
            res.0
                .map(|(n, t, l)| format!("{n} items then None; try_recv {t:?}; is_left {l}")),
            res.1,
        ),
        ok,
    );

    let res = timed(g, async {
        let end = channel.next().await;
        channel.leave();
        channel.leave();
        end
    })
    .await;
    let ok = matches!(res.0, Some(None));
    row(
        "Channel as a Stream, then leave twice",
        (res.0.map(|r| format!("next {r:?}; leave returned")), res.1),
        ok,
    );

    let res = timed(g, async {
        let mut n = 0;
        while updates.recv().await.is_some() {
            n += 1;
        }
        (n, updates.try_recv())
    })
    .await;
    let ok = matches!(&res.0, Some((_, Err(TryRecvError::Closed))));
    row(
        "Updates::recv, try_recv",
        (
            res.0
                .map(|(n, t)| format!("{n} items then None; try_recv {t:?}")),
            res.1,
        ),
        ok,
    );

    rows
}

// ----- the demo bot --------------------------------------------------------

/// An occupant invents [`INVENTED_THREADS`] thread ids; the bot joins at
/// most its cap, refuses (and counts) the rest, and still answers on the
/// instances it joined.
async fn bot_cap(server: &TestServer) -> Row {
    let r = room(server, "bot-cap");
    let bot_client = client(server, "capped-bot").await;
    let options = bot::BotOptions::default();
    let cap = options.max_channels;
    let (counts_tx, mut counts) = tokio::sync::watch::channel(bot::BotCounts::default());
    let serving = tokio::spawn(bot::serve_with(
        bot_client.clone(),
        vec![r.clone()],
        options,
        counts_tx,
    ));
    // The bot is in the room once it says so (its counts start then).
    let _ = timeout(PATIENCE, counts.wait_for(|c| c.rooms == 1)).await;
    let (memory_before, _) = crate::report::own_memory_kib();

    let (jid, password) = server.account("inventor").expect("account");
    let (addr, domain, r2) = (server.c2s_addr(), server.domain().to_owned(), r.clone());
    let start = Instant::now();
    let inventor = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::login(addr, &domain, &jid, &password, None)?;
        raw.send(&format!(
            "<presence to='{r2}/inventor'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))?;
        raw.read_until("self-presence", |t| {
            t.contains("code='110'") || t.contains("code=\"110\"")
        })?;
        let mut batch = String::new();
        for i in 0..INVENTED_THREADS {
            // "hi", base64.
            batch.push_str(&raw_frame(&r2, &format!("invented-{i}"), "aGk="));
        }
        raw.send(&batch)?;
        // Frames again on instances already refused: not logged again.
        let mut again = String::new();
        for i in INVENTED_THREADS - REPEATED..INVENTED_THREADS {
            again.push_str(&raw_frame(&r2, &format!("invented-{i}"), "aGk="));
        }
        raw.send(&again)?;
        // One more new instance: when the bot has refused it, it has
        // handled everything before it (one sender, one room, in order).
        raw.send(&raw_frame(&r2, "invented-last", "aGk="))?;
        Ok::<_, std::io::Error>(raw)
    })
    .await
    .ok()
    .and_then(Result::ok);
    let all = INVENTED_THREADS as u64 + 1;
    let seen = timeout(
        PATIENCE,
        counts.wait_for(|c| c.joined as u64 + c.refused + c.missed >= all),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|c| *c);
    let took = start.elapsed();
    let (memory_after, _) = crate::report::own_memory_kib();

    // The instances it joined still work: ping on the first, read the pong.
    let answered = match inventor {
        Some(mut raw) => tokio::task::spawn_blocking({
            let r = r.clone();
            move || {
                // "ping-after-flood" in base64.
                let ping = "cGluZy1hZnRlci1mbG9vZA==";
                // "pong-after-flood" in base64.
                let pong = "cG9uZy1hZnRlci1mbG9vZA==";
                raw.send(&raw_frame(&r, "invented-0", ping)).ok()?;
                let got = raw
                    .read_until("the bot's pong", |t| t.contains(pong))
                    .is_ok();
                raw.close();
                Some(got)
            }
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false),
        None => false,
    };
    bot_client.shutdown().await;
    let ended = timeout(PATIENCE, serving).await.is_ok();
    let counts = seen.unwrap_or_default();
    let held = seen.is_some()
        && counts.joined == cap
        && counts.refused > 0
        && counts.joined as u64 + counts.refused + counts.missed == all
        && answered
        && ended;
    Row::new(
        Part::Api,
        format!(
            "Prosody: the demo bot (cap {cap}) and an occupant inventing {INVENTED_THREADS} + 1 thread ids ({REPEATED} sent twice)"
        ),
        format!(
            "joined {}, refused {} (each logged once at warn), events missed {}, in {}; \
             still answers on a joined instance: {answered}; ended at shutdown: {ended}",
            counts.joined,
            counts.refused,
            counts.missed,
            ms(took)
        ),
        held,
    )
    .with_memory(format!(
        "this process {memory_before} → {memory_after} KiB"
    ))
}
