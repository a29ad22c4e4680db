//! The host's browser tests over Iroh: the same unchanged apps
//! (`host/apps/conformance`, `host/apps/board`) that `host/tests/browser.rs`
//! runs over XMPP, served by `webxdc_host::Origin` to headless Chromium,
//! with the realtime channel carried by iroh-gossip (the `iroh-fixed`
//! variant) between two devices of one simulated chat.
//!
//! Status updates are not carried over Iroh (Delta Chat sends them as chat
//! messages): the members share an in-process store, so the two update
//! cases of the conformance app test the host with that store, and are
//! marked as such in the output.
//!
//! The whole process runs in a loopback-only network namespace (iroh 0.35
//! probes the default gateway otherwise); chromedriver and Chromium are
//! started from inside it and only need loopback.
//!
//! No sleeps synchronise anything: the tests wait for page state with a
//! bounded polling wait, or send until received.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use iroh_backend::{IrohHostChat, Variant};
use serde_json::json;
use test_browser::conformance::Results;
use test_browser::{serial, Page};
use webxdc_host::transport::{Realtime, RealtimeEvent, TransportError, Update, UpdateEvent};
use webxdc_host::{App, Origin, Transport};

/// iroh 0.35's port mapper probes the default gateway: move the whole test
/// process into a loopback-only network namespace before any thread starts
/// (Chromium and chromedriver, started later, inherit it).
#[ctor::ctor]
fn isolate_network() {
    // Chromium comes from the package registry: install it (if missing)
    // while the network is still there. A failure shows again, in words,
    // when the first page opens.
    if let Err(e) = test_browser::install() {
        eprintln!("iroh-backend: {e}");
    }
    if let Err(e) = iroh_backend::netns::isolate() {
        eprintln!("iroh-backend: cannot isolate the network: {e}");
    }
}

const WAIT: Duration = Duration::from_secs(20);

/// The conformance cases that run on the in-process update store, not on
/// Iroh.
const UPDATE_CASES: [&str; 2] = [
    "updates_serials_increase",
    "update_listener_replays_from_serial",
];

/// The app directory `name` under `host/apps/`, unchanged.
fn host_app(name: &str) -> Arc<App> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../host/apps")
        .join(name);
    Arc::new(App::load(&dir).unwrap_or_else(|e| panic!("host/apps/{name}: {e}")))
}

/// A chat of alice and bob on two Iroh devices. Each test ends it with
/// `shutdown` (see [`IrohHostChat::shutdown`] for why).
async fn chat() -> IrohHostChat {
    assert!(
        iroh_backend::netns::loopback_only(),
        "the test process is not in a loopback-only network namespace (see the message above)"
    );
    IrohHostChat::start(Variant::Fixed, &["alice", "bob"])
        .await
        .expect("the simulated chat over Iroh")
}

async fn serve(chat: &IrohHostChat, name: &str, app: &Arc<App>, instance: &str) -> Origin {
    let transport: Arc<dyn Transport> = chat.member(name).expect("a member");
    Origin::serve(app.clone(), transport, instance)
        .await
        .expect("serve")
}

// ----- the conformance app -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_app_over_iroh() {
    let _serial = serial().await;
    let chat = chat().await;
    let app = host_app("conformance");
    let instance = "conformance-1";
    let (oa, ob) = (
        serve(&chat, "alice", &app, instance).await,
        serve(&chat, "bob", &app, instance).await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    let results = Results::read(&[&pa, &pb], Duration::from_secs(120)).await;
    results.print("host-iroh", |name| {
        if UPDATE_CASES.contains(&name) {
            " [status updates: in-process store, not Iroh]"
        } else {
            ""
        }
    });
    // What the XMPP host test asserts, and the other realtime cases.
    results.assert_passed(
        16,
        &[
            "double_join_is_an_error",
            "oversize_rejected_channel_still_works",
            "exact_bytes_all_256_values",
            "empty_payload",
            "max_size_payload_round_trip",
            "no_self_echo",
            "set_listener_replaces",
            "leave_stops_delivery_at_once",
            "updates_serials_increase",
            "update_listener_replays_from_serial",
            "api_surface",
            "two_peers_both_directions",
            "per_sender_order_200",
            "identical_payloads_both_delivered",
            "leave_twice_is_harmless",
            "send_after_leave_is_an_error",
            "join_again_after_leave_works",
        ],
    );
    let results = &results.cases;
    // The only skip is the app's own (one instance per app).
    let skipped: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.0 == "skip")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(skipped, ["isolation_between_instances_in_one_chat"]);
    chat.shutdown().await;
}

// ----- the board app ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_app_both_directions_over_iroh() {
    let _serial = serial().await;
    let chat = chat().await;
    let app = host_app("board");
    let (oa, ob) = (
        serve(&chat, "alice", &app, "board").await,
        serve(&chat, "bob", &app, "board").await,
    );
    let started = Instant::now();
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    // Each says hello until the other knows it (a peer appears with its
    // first message; the swarm forms after the pages joined).
    for (p, q) in [(&pa, &pb), (&pb, &pa)] {
        let deadline = Instant::now() + WAIT;
        while q.eval("return board.peers().length", vec![]).await == json!(0) {
            p.eval("board.hello()", vec![]).await;
            assert!(Instant::now() < deadline, "the boards never met");
            q.pause(100).await;
        }
    }
    assert_eq!(
        pa.eval("return board.peers()", vec![]).await,
        json!(["bob"])
    );
    assert_eq!(
        pb.eval("return board.peers()", vec![]).await,
        json!(["alice"])
    );
    // Three strokes one way, five the other, each sent once.
    let strokes = |n: i32, y: i32| {
        json!((0..n)
            .map(|i| vec![[100 + 40 * i, y], [120 + 40 * i, y + 60], [140 + 40 * i, y]])
            .collect::<Vec<_>>())
    };
    pa.eval(
        "for (const s of arguments[0]) board.stroke(s); board.cursor(470, 250);",
        vec![strokes(3, 100)],
    )
    .await;
    pb.eval(
        "for (const s of arguments[0]) board.stroke(s); board.cursor(640, 420);",
        vec![strokes(5, 400)],
    )
    .await;
    pa.wait_for("bob's strokes", "board.strokes() >= 8", WAIT)
        .await;
    pb.wait_for("alice's strokes", "board.strokes() >= 8", WAIT)
        .await;
    for p in [&pa, &pb] {
        assert_eq!(p.eval("return board.strokes()", vec![]).await, json!(8));
        p.wait_for(
            "the other's cursor",
            "[...document.querySelectorAll('.cursor')].some((c) => c.style.display === 'block')",
            WAIT,
        )
        .await;
    }
    println!(
        "board backend=host-iroh: met both ways, 3 + 5 strokes and both cursors ({} ms)",
        started.elapsed().as_millis()
    );
    chat.shutdown().await;
}

// ----- the transport without a browser ------------------------------------------

/// Sends `data` on `from` until `to` receives it (the swarm forms after
/// both joined, and the channel keeps nothing for late joiners).
async fn deliver(from: &dyn Realtime, to: &mut dyn Realtime, data: &[u8]) {
    let deadline = Instant::now() + WAIT;
    loop {
        from.send(data).await.expect("send");
        // Cancelling recv keeps what it had not yet taken.
        match tokio::time::timeout(Duration::from_millis(250), to.recv()).await {
            Ok(Some(RealtimeEvent::Data(d))) if d == data => return,
            Ok(None) => panic!("the channel ended"),
            // Nothing yet, or an earlier copy of another payload.
            _ => assert!(Instant::now() < deadline, "{data:?} never arrived"),
        }
    }
}

/// The trait's contract at the Rust level: errors the page relies on,
/// delivery both ways, leave and join again, updates in the shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_contract_without_a_browser() {
    let chat = chat().await;
    let (a, b) = (chat.member("alice").unwrap(), chat.member("bob").unwrap());
    assert_eq!(a.self_addr(), "alice@iroh.invalid");
    assert_eq!(b.self_name(), "bob");
    let mut ca = a.join("i").expect("join");
    assert_eq!(a.join("i").err(), Some(TransportError::AlreadyJoined));
    let mut cb = b.join("i").expect("join");

    deliver(&*ca, &mut *cb, b"a to b").await;
    deliver(&*cb, &mut *ca, b"b to a").await;

    assert_eq!(
        ca.send(&vec![0; 128_001]).await,
        Err(TransportError::TooLarge { size: 128_001 })
    );
    cb.leave();
    assert_eq!(cb.recv().await, None);
    assert_eq!(cb.send(b"x").await, Err(TransportError::Left));
    let mut cb = b.join("i").expect("join again after leave");
    deliver(&*ca, &mut *cb, b"after the new join").await;

    // Status updates: the shared in-process store, the sender included.
    let update = Update {
        payload: "{\"n\":1}".into(),
        info: None,
        document: None,
        summary: None,
    };
    a.send_update("i", &update).await.expect("send_update");
    let mut feed = b.updates("i").await.expect("updates");
    assert_eq!(feed.next().await, Some(UpdateEvent::Update(update)));
    assert!(matches!(
        feed.next().await,
        Some(UpdateEvent::PastEnd { complete: true, .. })
    ));
    chat.shutdown().await;
}
