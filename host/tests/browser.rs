//! Real apps in headless Chromium, two users on two XMPP accounts through
//! two hosts, on Prosody and on ejabberd started by the test.
//!
//! No sleeps synchronise anything: the tests wait for page state with a
//! bounded polling wait, or send until received.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::{serial, Chat, Page};
use serde_json::json;
use test_browser::conformance::Results;
use webxdc_host::App;
use xmpp_test_server::ServerKind;

const WAIT: Duration = Duration::from_secs(20);

/// A page that exposes the raw API to the test: `probe.join()`,
/// `probe.send([bytes])`, received payloads in `rx`, updates in `ups`.
fn probe_app() -> Arc<App> {
    common::app_of(&[
        ("manifest.toml", "name = \"Probe\""),
        (
            "index.html",
            r#"<!doctype html><meta charset="utf-8"><title>probe</title>
<script src="webxdc.js"></script>
<script>
  window.rx = []; window.ups = []; window.replayed = null; window.ch = null;
  window.probe = {
    join() { ch = webxdc.joinRealtimeChannel(); ch.setListener((d) => rx.push(Array.from(d))); },
    send(bytes) { ch.send(new Uint8Array(bytes)); },
    listen(serial) {
      ups = []; replayed = false;
      webxdc.setUpdateListener((u) => ups.push(u), serial).then(() => { replayed = true; });
    },
  };
</script><p>probe</p>"#,
        ),
    ])
}

/// Sends `bytes` from `from` until `to` has received them (joins are
/// asynchronous); returns how many copies were sent.
async fn send_until_received(from: &Page, to: &Page, bytes: &[u8]) -> usize {
    let deadline = Instant::now() + WAIT;
    let want = json!(bytes);
    let mut sent = 0;
    loop {
        from.eval("probe.send(arguments[0])", vec![want.clone()])
            .await;
        sent += 1;
        let got = to
            .eval(
                "return rx.some((r) => JSON.stringify(r) === JSON.stringify(arguments[0]))",
                vec![want.clone()],
            )
            .await;
        if got == json!(true) {
            return sent;
        }
        assert!(Instant::now() < deadline, "payload never arrived");
        // Give the copy in flight a moment before sending another.
        to.pause(100).await;
    }
}

// ----- the conformance app -----------------------------------------------------

async fn conformance(kind: ServerKind) {
    let _serial = serial().await;
    let chat = Chat::start(kind).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let app = common::project_app("conformance");
    let instance = "conformance-1";
    let (oa, ob) = (
        alice.serve(&app, instance).await,
        bob.serve(&app, instance).await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    let results = Results::read(&[&pa, &pb], Duration::from_secs(120)).await;
    results.print(&format!("host-xmpp-{kind}"), |_| "");
    results.assert_passed(16, &CONFORMANCE_MUST_PASS);
}

/// The conformance app's cases that must pass on every transport of the
/// host (the others may be skipped where a transport lacks something).
const CONFORMANCE_MUST_PASS: [&str; 10] = [
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
];

#[tokio::test]
async fn conformance_app_prosody() {
    conformance(ServerKind::Prosody).await;
}

#[tokio::test]
async fn conformance_app_ejabberd() {
    conformance(ServerKind::Ejabberd).await;
}

// ----- isolation, 128001 bytes ------------------------------------------------

async fn isolation(kind: ServerKind) {
    let _serial = serial().await;
    let chat = Chat::start(kind).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let app = probe_app();
    let (a1, a2) = (
        alice.serve(&app, "inst-1").await,
        alice.serve(&app, "inst-2").await,
    );
    let (b1, b2) = (
        bob.serve(&app, "inst-1").await,
        bob.serve(&app, "inst-2").await,
    );
    let (pa1, pa2, pb1, pb2) = tokio::join!(
        Page::open(a1.url()),
        Page::open(a2.url()),
        Page::open(b1.url()),
        Page::open(b2.url())
    );
    for p in [&pa1, &pa2, &pb1, &pb2] {
        p.eval("probe.join()", vec![]).await;
    }
    send_until_received(&pa1, &pb1, b"ready-1").await;
    send_until_received(&pa2, &pb2, b"ready-2").await;
    // Clear what the barriers left.
    for p in [&pa1, &pa2, &pb1, &pb2] {
        p.eval("rx.length = 0", vec![]).await;
    }

    // 128001 bytes throw in the page, with the library's words; nothing
    // is sent (b1's next payload is the marker that follows).
    let thrown = pa1
        .eval(
            "try { probe.send(new Array(128001).fill(1)); return null } catch (e) { return e.message }",
            vec![],
        )
        .await;
    assert_eq!(
        thrown,
        json!("payload of 128001 bytes exceeds the limit of 128000 bytes")
    );

    // inst-1 traffic, then inst-2 traffic from the same account: the
    // room keeps one sender's order, so once b2 has the inst-2 marker any
    // inst-1 payload that leaked would already be there.
    pa1.eval("probe.send([1,1,1])", vec![]).await;
    pb1.wait_for("the inst-1 payload", "rx.length >= 1", WAIT)
        .await;
    pa2.eval("probe.send([2,2,2])", vec![]).await;
    pb2.wait_for("the inst-2 payload", "rx.length >= 1", WAIT)
        .await;
    assert_eq!(
        pb1.eval("return rx", vec![]).await,
        json!([[1, 1, 1]]),
        "b1: the marker only, nothing of the 128001 bytes"
    );
    assert_eq!(
        pb2.eval("return rx", vec![]).await,
        json!([[2, 2, 2]]),
        "b2: inst-2 only"
    );
    // The senders got nothing back (no echo) and nothing across.
    assert_eq!(pa1.eval("return rx", vec![]).await, json!([]));
    assert_eq!(pa2.eval("return rx", vec![]).await, json!([]));

    // Exact bytes in the browser: all 256 values, and 128000 bytes.
    let all: Vec<u8> = (0..=255).collect();
    pb1.eval("probe.send(arguments[0])", vec![json!(all)]).await;
    pa1.wait_for("256 values", "rx.length >= 1", WAIT).await;
    assert_eq!(pa1.eval("return rx[0]", vec![]).await, json!(all));
    pb1.eval(
        "probe.send(Array.from({length: 128000}, (_, i) => (i * 13) % 256))",
        vec![],
    )
    .await;
    let ok = pa1
        .wait_for(
            "128000 bytes",
            "rx.length >= 2 && rx[1].length === 128000 && rx[1].every((b, i) => b === (i * 13) % 256)",
            WAIT,
        )
        .await;
    assert_eq!(ok, json!(true));
}

#[tokio::test]
async fn isolation_oversize_exact_bytes_prosody() {
    isolation(ServerKind::Prosody).await;
}

#[tokio::test]
async fn isolation_oversize_exact_bytes_ejabberd() {
    isolation(ServerKind::Ejabberd).await;
}

// ----- status updates ------------------------------------------------------------

async fn updates(kind: ServerKind) {
    let _serial = serial().await;
    let chat = Chat::start(kind).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let app = probe_app();
    let instance = "updates-1";
    let (oa, ob) = (
        alice.serve(&app, instance).await,
        bob.serve(&app, instance).await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    for p in [&pa, &pb] {
        p.eval("probe.join(); probe.listen(0)", vec![]).await;
        p.wait_for("the replay of nothing", "replayed === true", WAIT)
            .await;
    }
    // A realtime payload in the same instance: it must never be among the
    // updates, not even in the archive.
    send_until_received(&pa, &pb, b"realtime, not an update").await;

    pa.eval(
        "webxdc.sendUpdate({payload: {n: 1}, info: 'one'}, '')",
        vec![],
    )
    .await;
    pb.wait_for("update 1 at bob", "ups.length >= 1", WAIT)
        .await;
    pb.eval(
        "webxdc.sendUpdate({payload: {n: 2}, summary: 's'}, '')",
        vec![],
    )
    .await;
    for p in [&pa, &pb] {
        p.wait_for("both updates", "ups.length >= 2", WAIT).await;
        let ups = p.eval("return ups", vec![]).await;
        assert_eq!(ups[0]["payload"], json!({"n": 1}));
        assert_eq!(ups[0]["info"], json!("one"));
        assert_eq!(ups[1]["payload"], json!({"n": 2}));
        assert_eq!(ups[1]["summary"], json!("s"));
        let (s1, s2) = (
            ups[0]["serial"].as_u64().unwrap(),
            ups[1]["serial"].as_u64().unwrap(),
        );
        assert!(s1 > 0 && s2 > s1, "serials increase: {ups}");
        assert!(ups[1]["max_serial"].as_u64().unwrap() >= s2);
    }

    // setUpdateListener(cb, serial of the first) replays the second only.
    let s1 = pa.eval("return ups[0].serial", vec![]).await;
    pa.eval("probe.listen(arguments[0])", vec![s1.clone()])
        .await;
    pa.wait_for("the replay from serial 1", "replayed === true", WAIT)
        .await;
    let replayed = pa.eval("return ups", vec![]).await;
    assert_eq!(replayed.as_array().map(Vec::len), Some(1), "{replayed}");
    assert_eq!(replayed[0]["payload"], json!({"n": 2}));

    // A page loaded later (bob reloads): every past update.
    pb.goto(&ob.url()).await;
    pb.eval("probe.listen(0)", vec![]).await;
    pb.wait_for("the replay after a reload", "replayed === true", WAIT)
        .await;
    let payloads = pb.eval("return ups.map((u) => u.payload)", vec![]).await;
    assert_eq!(payloads, json!([{"n": 1}, {"n": 2}]));

    // A host that starts later: carol's new host reads the room's archive
    // (and a restarted host of bob's too). No realtime payload among them.
    drop(pb);
    ob.stop().await;
    bob.client.shutdown().await;
    for name in ["bob", "carol"] {
        let user = chat.user(name).await;
        let origin = user.serve(&app, instance).await;
        let page = Page::open(origin.url()).await;
        page.eval("probe.listen(0)", vec![]).await;
        page.wait_for("the archive's updates", "replayed === true", WAIT)
            .await;
        let payloads = page.eval("return ups.map((u) => u.payload)", vec![]).await;
        assert_eq!(payloads, json!([{"n": 1}, {"n": 2}]), "{name}'s new host");
        let serials = page.eval("return ups.map((u) => u.serial)", vec![]).await;
        assert_eq!(serials, json!([1, 2]), "serials rebuilt from the archive");
    }
}

#[tokio::test]
async fn updates_serials_replay_late_page_restarted_host_prosody() {
    updates(ServerKind::Prosody).await;
}

#[tokio::test]
async fn updates_serials_replay_late_page_restarted_host_ejabberd() {
    updates(ServerKind::Ejabberd).await;
}

// ----- who may reach what -----------------------------------------------------------

#[tokio::test]
async fn a_page_cannot_reach_another_origin_or_files_outside_the_app() {
    let _serial = serial().await;
    let chat = Chat::start(ServerKind::Prosody).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let app = probe_app();
    let (oa, ob) = (alice.serve(&app, "i").await, bob.serve(&app, "i").await);
    let pa = Page::open(oa.url()).await;

    // Outcome of a WebSocket: "open" or "refused".
    let ws = r#"
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket(arguments[0]);
        ws.onopen = () => { ws.close(); done("open"); };
        ws.onerror = () => done("refused");
        setTimeout(() => done("no answer"), 5000);"#;
    let try_ws = |url: String| {
        let pa = &pa;
        async move {
            pa.client
                .execute_async(ws, vec![json!(url)])
                .await
                .expect("script")
        }
    };
    let own = format!("ws://{}/webxdc-bridge?secret={}", oa.addr(), oa.secret());
    // Control: the page's own bridge with its own secret opens (a second
    // page of the origin takes over: this proves the refusals below are
    // about the secret and the origin, not about WebSockets).
    assert_eq!(try_ws(own).await, json!("open"));
    // Wrong secret on its own origin.
    let wrong = format!("ws://{}/webxdc-bridge?secret={}", oa.addr(), "0".repeat(64));
    assert_eq!(try_ws(wrong).await, json!("refused"));
    // Another origin's bridge, even with that origin's secret.
    let other = format!("ws://{}/webxdc-bridge?secret={}", ob.addr(), ob.secret());
    assert_eq!(try_ws(other).await, json!("refused"));

    // Nothing of another origin can be fetched (CSP connect-src 'self'),
    // and nothing outside the app is served.
    let fetch = r#"
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then((r) => done(r.status), () => done("blocked"));"#;
    for (url, want) in [
        (format!("{}index.html", ob.url()), json!("blocked")),
        ("/../Cargo.toml".to_owned(), json!(404)),
        ("/%2e%2e/Cargo.toml".to_owned(), json!(404)),
        ("/..%2f..%2fCargo.toml".to_owned(), json!(404)),
        ("/etc/passwd".to_owned(), json!(404)),
        ("/index.html".to_owned(), json!(200)),
    ] {
        let got = pa
            .client
            .execute_async(fetch, vec![json!(url)])
            .await
            .expect("script");
        assert_eq!(got, want, "{url}");
    }
}

// ----- the screenshot -------------------------------------------------------------------

#[tokio::test]
async fn screenshot_of_the_board_app() {
    let _serial = serial().await;
    let chat = Chat::start(ServerKind::Prosody).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let app = common::project_app("board");
    let (oa, ob) = (
        alice.serve(&app, "board").await,
        bob.serve(&app, "board").await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    // Each says hello until the other knows it (a peer appears with its
    // first message): send until received.
    for (p, q) in [(&pa, &pb), (&pb, &pa)] {
        let deadline = Instant::now() + WAIT;
        while q.eval("return board.peers().length", vec![]).await == json!(0) {
            p.eval("board.hello()", vec![]).await;
            assert!(Instant::now() < deadline, "the boards never met");
            q.pause(100).await;
        }
    }
    // Alice draws a house, Bob a sun and a path; each sees the other's.
    let house = json!([
        [
            [180, 520],
            [180, 330],
            [330, 200],
            [480, 330],
            [480, 520],
            [180, 520]
        ],
        [[280, 520], [280, 420], [360, 420], [360, 520]],
        [[210, 360], [260, 360], [260, 400], [210, 400], [210, 360]]
    ]);
    let sun: Vec<Vec<[i32; 2]>> = {
        let mut s = vec![(0..=36)
            .map(|i| {
                let a = i as f64 * std::f64::consts::TAU / 36.0;
                [
                    (760.0 + 70.0 * a.cos()) as i32,
                    (170.0 + 70.0 * a.sin()) as i32,
                ]
            })
            .collect()];
        for k in 0..8 {
            let a = k as f64 * std::f64::consts::TAU / 8.0;
            s.push(vec![
                [
                    (760.0 + 90.0 * a.cos()) as i32,
                    (170.0 + 90.0 * a.sin()) as i32,
                ],
                [
                    (760.0 + 125.0 * a.cos()) as i32,
                    (170.0 + 125.0 * a.sin()) as i32,
                ],
            ]);
        }
        s.push(vec![
            [330, 520],
            [420, 590],
            [560, 620],
            [760, 660],
            [950, 670],
        ]);
        s
    };
    pa.eval(
        "for (const s of arguments[0]) board.stroke(s); board.cursor(470, 250);",
        vec![house],
    )
    .await;
    pb.eval(
        "for (const s of arguments[0]) board.stroke(s); board.cursor(640, 420);",
        vec![json!(sun)],
    )
    .await;
    pa.wait_for("bob's strokes", "board.strokes() >= 13", WAIT)
        .await;
    pb.wait_for("alice's strokes", "board.strokes() >= 13", WAIT)
        .await;
    // The cursors are shown once their message arrived.
    for p in [&pa, &pb] {
        p.wait_for(
            "the other's cursor",
            "[...document.querySelectorAll('.cursor')].some((c) => c.style.display === 'block')",
            WAIT,
        )
        .await;
    }
    let (shot_a, shot_b) = (pa.screenshot().await, pb.screenshot().await);
    let composed = side_by_side(&shot_a, &shot_b);
    let target = if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/host-screenshot.png")
    } else {
        std::env::temp_dir().join(format!("host-screenshot-{}.png", std::process::id()))
    };
    std::fs::write(&target, &composed).expect("write the screenshot");
    println!("screenshot: {}", target.display());
}

/// Two PNG screenshots side by side with a gap, as one PNG. Checks that
/// both halves show something (not one flat colour).
fn side_by_side(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (ia, wa, ha) = decode_rgba(a);
    let (ib, wb, hb) = decode_rgba(b);
    for (img, name) in [(&ia, "alice"), (&ib, "bob")] {
        let first = &img[..4];
        assert!(
            img.chunks(4).any(|p| p != first),
            "{name}'s screenshot is blank"
        );
    }
    let gap = 16;
    let (w, h) = (wa + gap + wb, ha.max(hb));
    let mut out = vec![0x2du8; (w * h * 4) as usize];
    for px in out.chunks_mut(4) {
        px.copy_from_slice(&[0x2d, 0x31, 0x42, 0xff]);
    }
    let blit = |out: &mut Vec<u8>, img: &[u8], iw: u32, ih: u32, x0: u32| {
        for y in 0..ih {
            let src = &img[(y * iw * 4) as usize..((y + 1) * iw * 4) as usize];
            let at = ((y * w + x0) * 4) as usize;
            out[at..at + src.len()].copy_from_slice(src);
        }
    };
    blit(&mut out, &ia, wa, ha, 0);
    blit(&mut out, &ib, wb, hb, wa + gap);
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().expect("png header");
        writer.write_image_data(&out).expect("png data");
    }
    png_bytes
}

fn decode_rgba(bytes: &[u8]) -> (Vec<u8>, u32, u32) {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 0xff])
            .collect(),
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    (rgba, info.width, info.height)
}

// ----- an app on the @webxdc/realtime helper ----------------------------------------

/// The bytes of `pattern(seq, length)` in `apps/realtime-helper/helper.js`.
fn helper_pattern(seq: u32, length: u32) -> Vec<u8> {
    (0..length)
        .map(|i| {
            (i.wrapping_add(seq.wrapping_mul(7919))
                .wrapping_mul(2654435761)
                >> 24) as u8
        })
        .collect()
}

/// 32-bit FNV-1a, as `fnv1a` in `helper.js`.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Sends `length` bytes from `from` through the helper and checks how they
/// left: as several channel messages, none over the host's 128000 bytes.
async fn helper_send(from: &Page, seq: u32, length: u32, messages: usize) {
    let sent = from
        .eval(
            "helper.send(arguments[0], arguments[1]); return helper.sent[helper.sent.length - 1];",
            vec![json!(seq), json!(length)],
        )
        .await;
    let want = fnv1a(&helper_pattern(seq, length));
    assert_eq!(
        sent["fnv"],
        json!(want),
        "the page makes the pattern the test expects: {sent}"
    );
    let sizes: Vec<u64> = sent["messages"]
        .as_array()
        .expect("message sizes")
        .iter()
        .map(|v| v.as_u64().expect("a size"))
        .collect();
    assert_eq!(sizes.len(), messages, "chunks of {length} bytes: {sizes:?}");
    assert!(
        sizes.iter().all(|&s| s <= 128000),
        "every chunk fits one realtime message: {sizes:?}"
    );
}

async fn realtime_helper(kind: ServerKind) {
    // Before the lock: a machine without npm fails here at once.
    let app = common::npm::realtime_helper_app();
    let _serial = serial().await;
    let started = Instant::now();
    let chat = Chat::start(kind).await;
    let (alice, bob) = (chat.user("alice").await, chat.user("bob").await);
    let instance = "realtime-helper-1";
    let (oa, ob) = (
        alice.serve(&app, instance).await,
        bob.serve(&app, instance).await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));

    // Presence: each helper lists the other device, with the address it
    // advertises in its heartbeat's state, and nobody else (not itself).
    let addr_a = webxdc_host::Transport::self_addr(&*alice.transport);
    let addr_b = webxdc_host::Transport::self_addr(&*bob.transport);
    let mut devices = Vec::new();
    for (page, other) in [(&pa, &addr_b), (&pb, &addr_a)] {
        let other = serde_json::to_string(other).unwrap();
        page.wait_for(
            &format!("{other} online in the helper"),
            &format!("window.helper && helper.peers.some((p) => p.addr === {other})"),
            WAIT,
        )
        .await;
        devices.push(page.eval("return helper.deviceId", vec![]).await);
    }
    let (dev_a, dev_b) = (&devices[0], &devices[1]);
    assert_ne!(dev_a, dev_b, "two devices");
    for (page, other, addr) in [(&pa, dev_b, &addr_b), (&pb, dev_a, &addr_a)] {
        let peers = page
            .eval("return helper.peers.map((p) => [p.id, p.addr])", vec![])
            .await;
        assert_eq!(peers, json!([[other, addr]]));
    }

    // Both sides see each other, so both have joined: one send is enough
    // (the channel keeps nothing for late joiners). 300000 bytes go as
    // 126000 + 126000 + 48000 (plus headers).
    helper_send(&pa, 1, 300_000, 3).await;
    pb.wait_for(
        "alice's 300000 bytes at bob",
        "helper.received.length >= 1",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        pb.eval("return helper.received", vec![]).await,
        json!([{"from": dev_a, "seq": 1, "length": 300_000,
                "fnv": fnv1a(&helper_pattern(1, 300_000))}]),
        "bob got the payload whole and exact, once"
    );

    // And back: 128001 bytes, one more than a raw message may carry, go
    // as two chunks. Alice then has bob's only (no echo of her own).
    helper_send(&pb, 2, 128_001, 2).await;
    pa.wait_for(
        "bob's 128001 bytes at alice",
        "helper.received.length >= 1",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        pa.eval("return helper.received", vec![]).await,
        json!([{"from": dev_b, "seq": 2, "length": 128_001,
                "fnv": fnv1a(&helper_pattern(2, 128_001))}]),
        "alice got bob's payload whole and exact, and nothing of her own"
    );
    for page in [&pa, &pb] {
        assert_eq!(
            page.eval("return helper.error", vec![]).await,
            json!(null),
            "no error in the page"
        );
    }
    println!(
        "realtime_helper backend=host-xmpp-{kind}: presence both ways, 300000 and 128001 bytes chunked ({} ms)",
        started.elapsed().as_millis()
    );
}

#[tokio::test]
async fn realtime_helper_presence_and_chunks_prosody() {
    realtime_helper(ServerKind::Prosody).await;
}

#[tokio::test]
async fn realtime_helper_presence_and_chunks_ejabberd() {
    realtime_helper(ServerKind::Ejabberd).await;
}

// ----- selfAddr and selfName -------------------------------------------------

/// The page's `selfAddr` and `selfName` as Cheogram derives them in a room
/// that hides real JIDs: the room's occupant id for us where it gives one
/// (Prosody), else `xmpp:` and our occupant JID (ejabberd 23.01 has no
/// occupant ids); the name is our nick in the room.
async fn self_addr_and_name(kind: ServerKind) {
    let _serial = serial().await;
    let chat = Chat::start(kind).await;
    let alice = chat.user("alice").await;
    let me = alice
        .client
        .group(chat.room.clone())
        .await
        .expect("the room, entered already")
        .self_occupant()
        .expect("joined");
    assert!(!me.non_anonymous);
    let expected = match (&me.occupant_id, kind) {
        (Some(id), ServerKind::Prosody) => id.clone(),
        (None, ServerKind::Ejabberd) => format!("xmpp:{}/{}", chat.room, me.nick),
        other => panic!("unexpected occupant id for {kind}: {other:?}"),
    };
    let origin = alice.serve(&probe_app(), "who-1").await;
    let page = Page::open(origin.url()).await;
    let got = page
        .eval("return [webxdc.selfAddr, webxdc.selfName]", vec![])
        .await;
    assert_eq!(got, json!([expected, me.nick]));
}

#[tokio::test]
async fn self_addr_and_name_as_cheogram_derives_them_prosody() {
    self_addr_and_name(ServerKind::Prosody).await;
}

#[tokio::test]
async fn self_addr_and_name_as_cheogram_derives_them_ejabberd() {
    self_addr_and_name(ServerKind::Ejabberd).await;
}
