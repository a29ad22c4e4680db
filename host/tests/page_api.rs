//! `webxdc.js` in headless Chromium over the in-memory chat: the page-side
//! rules that no server changes (a left channel's listener, refused joins,
//! the order of send's checks, update listeners set again or with odd
//! serials). The XMPP browser tests run the same page over real servers.
//!
//! Every wait is for page state, bounded; nothing sleeps to synchronise.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use test_browser::{serial, Page};
use webxdc_host::transport::memory::MemoryChat;
use webxdc_host::{App, Origin};

mod common;

const WAIT: Duration = Duration::from_secs(20);

/// A page with the raw API and a log of what its listeners saw.
fn app() -> Arc<App> {
    common::app_of(&[
        ("manifest.toml", "name = \"Page API\""),
        (
            "index.html",
            r#"<!doctype html><meta charset="utf-8"><title>page api</title>
<script src="webxdc.js"></script>
<script>
  window.got = []; // [listener name, text]
  window.listener = (name) => (d) => got.push([name, new TextDecoder().decode(d)]);
  window.attempt = (f) => { try { f(); return null; } catch (e) { return e.message; } };
</script><p>page api</p>"#,
        ),
    ])
}

async fn origin(app: &Arc<App>, chat: &MemoryChat, name: &str, instance: &str) -> Origin {
    Origin::serve(app.clone(), Arc::new(chat.user(name)), instance)
        .await
        .expect("serve")
}

/// Sends `text` from `from` (through `webxdc.js`) until `to`'s log has it.
async fn send_until_logged(from: &Page, to: &Page, via: &str, text: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        from.eval(
            &format!("{via}.send(new TextEncoder().encode(arguments[0]))"),
            vec![json!(text)],
        )
        .await;
        // Look for this copy a little while before sending another.
        let look = std::time::Instant::now() + Duration::from_millis(300);
        while std::time::Instant::now() < look {
            let seen = to
                .eval(
                    "return got.some((g) => g[1] === arguments[0])",
                    vec![json!(text)],
                )
                .await;
            if seen == json!(true) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{text:?} never arrived"
        );
    }
}

#[tokio::test]
async fn a_left_channel_cannot_touch_the_next_one_and_send_checks_size_first() {
    let _serial = serial().await;
    let chat = MemoryChat::new();
    let app = app();
    let (oa, ob) = (
        origin(&app, &chat, "alice", "i").await,
        origin(&app, &chat, "bob", "i").await,
    );
    let (pa, pb) = tokio::join!(Page::open(oa.url()), Page::open(ob.url()));
    pa.eval(
        "window.b = webxdc.joinRealtimeChannel(); b.setListener(listener('b'))",
        vec![],
    )
    .await;

    // Bob's first channel, left; a second one with its own listener.
    let e = pb
        .eval(
            "window.first = webxdc.joinRealtimeChannel(); first.setListener(listener('first')); \
             first.leave(); \
             window.second = webxdc.joinRealtimeChannel(); second.setListener(listener('second')); \
             return attempt(() => first.setListener(listener('stale')))",
            vec![],
        )
        .await;
    assert_eq!(e, json!(null), "setListener on a left channel is harmless");
    send_until_logged(&pa, &pb, "b", "to bob").await;
    let names = pb
        .eval("return [...new Set(got.map((g) => g[0]))]", vec![])
        .await;
    assert_eq!(names, json!(["second"]), "only the current listener hears");

    // After leave, an oversize send reports its size (the library's
    // first check), a small one that the channel was left.
    let errors = pb
        .eval(
            "second.leave(); return [attempt(() => second.send(new Uint8Array(128001))), \
             attempt(() => second.send(new Uint8Array(1)))]",
            vec![],
        )
        .await;
    assert_eq!(
        errors,
        json!([
            "payload of 128001 bytes exceeds the limit of 128000 bytes",
            "the channel was left"
        ])
    );
}

#[tokio::test]
async fn a_refused_join_leaves_the_page_channel() {
    let _serial = serial().await;
    let chat = MemoryChat::new();
    let app = app();
    // Two origins of one user on one instance: the transport refuses the
    // second join while the first channel is joined.
    let (o1, o2, ob) = (
        origin(&app, &chat, "alice", "i").await,
        origin(&app, &chat, "alice", "i").await,
        origin(&app, &chat, "bob", "i").await,
    );
    let (p1, p2, pb) = tokio::join!(
        Page::open(o1.url()),
        Page::open(o2.url()),
        Page::open(ob.url())
    );
    p1.eval(
        "window.c = webxdc.joinRealtimeChannel(); c.setListener(listener('p1'))",
        vec![],
    )
    .await;
    pb.eval(
        "window.c = webxdc.joinRealtimeChannel(); c.setListener(listener('bob'))",
        vec![],
    )
    .await;
    // p1's join has reached the transport once bob hears it.
    send_until_logged(&p1, &pb, "c", "p1 is in").await;

    p2.eval(
        "window.c = webxdc.joinRealtimeChannel(); c.setListener(listener('p2'))",
        vec![],
    )
    .await;
    p2.wait_for(
        "the host's refusal",
        "webxdc.hostErrors.some((e) => e.about === 'join')",
        WAIT,
    )
    .await;
    // The refusal left p2's channel: sends say so, and a new join is
    // allowed (and refused again by the transport, which is right here).
    p2.wait_for(
        "the channel to be left",
        "attempt(() => c.send(new Uint8Array(1))) === 'the channel was left'",
        WAIT,
    )
    .await;
    let again = p2
        .eval(
            "return attempt(() => { window.c = webxdc.joinRealtimeChannel(); })",
            vec![],
        )
        .await;
    assert_eq!(
        again,
        json!(null),
        "joining again is possible after a refusal"
    );
}

#[tokio::test]
async fn update_listeners_always_resolve() {
    let _serial = serial().await;
    let chat = MemoryChat::new();
    let app = app();
    let oa = origin(&app, &chat, "alice", "i").await;
    let pa = Page::open(oa.url()).await;
    pa.eval(
        "webxdc.sendUpdate({payload: 1}, ''); webxdc.sendUpdate({payload: 2}, ''); \
         window.done = []; window.seen = []; \
         webxdc.setUpdateListener(() => {}, 0).then(() => done.push('first')); \
         webxdc.setUpdateListener((u) => seen.push(u.serial), -1.5).then(() => done.push('second'));",
        vec![],
    )
    .await;
    pa.wait_for(
        "both promises and both updates",
        "done.length === 2 && seen.length === 2",
        WAIT,
    )
    .await;
    let (done, seen) = (
        pa.eval("return done", vec![]).await,
        pa.eval("return seen", vec![]).await,
    );
    assert_eq!(
        done,
        json!(["first", "second"]),
        "the replaced listener's promise resolves first"
    );
    assert_eq!(
        seen,
        json!([1, 2]),
        "a negative, fractional serial counts from 0"
    );
}
