//! The bridge protocol without a browser: a WebSocket client speaks to two
//! origins over an in-memory chat. The contract's checks at the boundary
//! (what a page that writes to the socket itself meets), status update
//! serials, and one page per origin.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webxdc_host::server::BRIDGE_PATH;
use webxdc_host::transport::memory::MemoryChat;
use webxdc_host::Origin;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

async fn two_origins(chat: &MemoryChat, instance: &str) -> (Origin, Origin) {
    let app = common::app_of(&[("index.html", "x")]);
    let a = Origin::serve(app.clone(), Arc::new(chat.user("alice")), instance)
        .await
        .unwrap();
    let b = Origin::serve(app, Arc::new(chat.user("bob")), instance)
        .await
        .unwrap();
    (a, b)
}

async fn connect(o: &Origin) -> Ws {
    let url = format!("ws://{}{BRIDGE_PATH}?secret={}", o.addr(), o.secret());
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", o.origin().parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn send_rt(ws: &mut Ws, data: &[u8]) {
    let mut frame = vec![1u8];
    frame.extend_from_slice(data);
    ws.send(Message::Binary(frame.into())).await.unwrap();
}

/// The next frame (text as JSON, binary as bytes without the tag).
async fn next(ws: &mut Ws) -> Result<Value, Vec<u8>> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within the timeout")
            .expect("the bridge is open")
            .expect("a valid frame");
        match msg {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Message::Binary(b) => {
                assert_eq!(b[0], 1, "realtime tag");
                return Err(b[1..].to_vec());
            }
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Joins on both sides, then [`barrier`].
async fn joined_pair(a: &mut Ws, b: &mut Ws) {
    send_json(a, json!({"op": "join"})).await;
    send_json(b, json!({"op": "join"})).await;
    barrier(a, b).await;
}

/// Sends from `a` until `b` receives (joins are handled asynchronously),
/// then clears the barrier's copies on both sides.
async fn barrier(a: &mut Ws, b: &mut Ws) {
    for _ in 0..100 {
        send_rt(a, b"ready?").await;
        // `next` is cancel-safe: a frame is never half-read.
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(100), next(b)).await {
            assert_eq!(frame, Err(b"ready?".to_vec()));
            // b answers once; a must get exactly that (nothing older, no
            // echo of its own barrier payloads).
            send_rt(b, b"drain").await;
            assert_eq!(next(a).await, Err(b"drain".to_vec()));
            // b skips the barrier copies still on their way.
            send_rt(a, b"drained").await;
            loop {
                match next(b).await {
                    Err(d) if d == b"drained" => return,
                    Err(d) if d == b"ready?" => continue,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    panic!("the two channels never connected");
}

#[tokio::test]
async fn realtime_both_ways_exact_bytes_no_echo() {
    let chat = MemoryChat::new();
    let (oa, ob) = two_origins(&chat, "i").await;
    let (mut a, mut b) = (connect(&oa).await, connect(&ob).await);
    joined_pair(&mut a, &mut b).await;

    let all: Vec<u8> = (0..=255).collect();
    let max = vec![0xA5u8; 128_000];
    for payload in [&all[..], &[][..], &max[..]] {
        send_rt(&mut a, payload).await;
        assert_eq!(next(&mut b).await, Err(payload.to_vec()));
        send_rt(&mut b, payload).await;
        assert_eq!(next(&mut a).await, Err(payload.to_vec()));
    }
    // No echo: a's next frame is b's marker, not a's own payload.
    send_rt(&mut a, b"mine").await;
    send_rt(&mut b, b"theirs").await;
    assert_eq!(next(&mut a).await, Err(b"theirs".to_vec()));
    assert_eq!(next(&mut b).await, Err(b"mine".to_vec()));
}

#[tokio::test]
async fn the_bridge_enforces_the_contract_with_the_librarys_words() {
    let chat = MemoryChat::new();
    let (oa, ob) = two_origins(&chat, "i").await;
    let (mut a, mut b) = (connect(&oa).await, connect(&ob).await);

    // Sending before joining: the channel is not there.
    send_rt(&mut a, b"early").await;
    let err = next(&mut a).await.unwrap();
    assert_eq!(err["op"], "error");
    assert_eq!(err["message"], "the channel was left");

    joined_pair(&mut a, &mut b).await;

    // 128001 bytes: refused, nothing reaches b.
    send_rt(&mut a, &vec![7u8; 128_001]).await;
    let err = next(&mut a).await.unwrap();
    assert_eq!(err["about"], "realtime");
    assert_eq!(
        err["message"],
        "payload of 128001 bytes exceeds the limit of 128000 bytes"
    );
    send_rt(&mut a, b"after").await;
    assert_eq!(
        next(&mut b).await,
        Err(b"after".to_vec()),
        "nothing before it"
    );

    // A second join without leave.
    send_json(&mut a, json!({"op": "join"})).await;
    let err = next(&mut a).await.unwrap();
    assert_eq!(err["about"], "join");
    assert_eq!(
        err["message"],
        "already joined this app instance in this chat; leave the other channel first"
    );

    // Leave: sends fail, b's payloads no longer arrive; join again works.
    send_json(&mut a, json!({"op": "leave"})).await;
    send_rt(&mut a, b"x").await;
    assert_eq!(
        next(&mut a).await.unwrap()["message"],
        "the channel was left"
    );
    send_rt(&mut b, b"to nobody").await;
    // b's bridge handles frames in order: once it answered this, "to
    // nobody" went out (while a was not joined).
    b.send(Message::Text("sync".into())).await.unwrap();
    assert_eq!(next(&mut b).await.unwrap()["about"], "bridge");
    send_json(&mut a, json!({"op": "join"})).await;
    barrier(&mut a, &mut b).await; // fails on "to nobody"

    // Garbage is answered, not fatal.
    a.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next(&mut a).await.unwrap()["about"], "bridge");
    a.send(Message::Binary(vec![9u8, 1, 2].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut a).await.unwrap()["about"], "bridge");
}

/// Reads `{"op":"update"}` frames up to `replayed` for listen `id`.
async fn replay(ws: &mut Ws, id: u64) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let v = next(ws).await.expect("text");
        match v["op"].as_str() {
            Some("update") if v["id"] == id => got.push(v),
            Some("replayed") if v["id"] == id => return got,
            _ => {}
        }
    }
}

async fn next_update(ws: &mut Ws) -> Value {
    loop {
        let v = next(ws).await.expect("text");
        if v["op"] == "update" {
            return v;
        }
    }
}

#[tokio::test]
async fn updates_have_serials_replay_from_n_and_reach_late_pages() {
    let chat = MemoryChat::new();
    let (oa, ob) = two_origins(&chat, "i").await;
    let (mut a, mut b) = (connect(&oa).await, connect(&ob).await);
    send_json(&mut a, json!({"op": "listen", "id": 1, "serial": 0})).await;
    send_json(&mut b, json!({"op": "listen", "id": 1, "serial": 0})).await;
    assert!(replay(&mut a, 1).await.is_empty());
    assert!(replay(&mut b, 1).await.is_empty());

    let upd = |n: u64| json!({"op": "update", "update": {"payload": {"n": n}, "info": format!("n={n}"), "href": "ignored"}});
    send_json(&mut a, upd(1)).await;
    send_json(&mut b, upd(2)).await;
    // Both pages see both updates, the sender's own included, in one
    // order with serials 1, 2.
    for ws in [&mut a, &mut b] {
        let (u1, u2) = (next_update(ws).await, next_update(ws).await);
        assert_eq!(
            (u1["serial"].as_u64(), u2["serial"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(u2["max_serial"], 2);
        assert_eq!(u1["update"]["info"].as_str().map(|s| &s[..2]), Some("n="));
        assert!(u1["update"].get("href").is_none());
    }

    // setUpdateListener(cb, 1) replays serial 2 only.
    send_json(&mut a, json!({"op": "listen", "id": 2, "serial": 1})).await;
    let got = replay(&mut a, 2).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["serial"], 2);

    // A page loaded later (a new connection: it takes over from the old
    // page of its origin) gets every past update.
    drop(b);
    let mut b2 = connect(&ob).await;
    send_json(&mut b2, json!({"op": "listen", "id": 1, "serial": 0})).await;
    let got = replay(&mut b2, 1).await;
    let payloads: Vec<&Value> = got.iter().map(|v| &v["update"]["payload"]["n"]).collect();
    assert_eq!(payloads, [&json!(1), &json!(2)]);

    // A host that starts later (a new origin for a new user) too.
    let oc = Origin::serve(
        common::app_of(&[("index.html", "x")]),
        Arc::new(chat.user("carol")),
        "i",
    )
    .await
    .unwrap();
    let mut c = connect(&oc).await;
    send_json(&mut c, json!({"op": "listen", "id": 1, "serial": 0})).await;
    assert_eq!(replay(&mut c, 1).await.len(), 2);

    // Another instance has its own list.
    let od = Origin::serve(
        common::app_of(&[("index.html", "x")]),
        Arc::new(chat.user("dave")),
        "other",
    )
    .await
    .unwrap();
    let mut d = connect(&od).await;
    send_json(&mut d, json!({"op": "listen", "id": 1, "serial": 0})).await;
    assert!(replay(&mut d, 1).await.is_empty());

    // An update that is not JSON-able or too large is refused.
    let big = "x".repeat(128_001);
    send_json(&mut a, json!({"op": "update", "update": {"payload": big}})).await;
    let err = loop {
        let v = next(&mut a).await.unwrap();
        if v["op"] == "error" {
            break v;
        }
    };
    assert_eq!(err["about"], "sendUpdate");
}

#[tokio::test]
async fn a_new_page_takes_over_its_origin() {
    let chat = MemoryChat::new();
    let (oa, _ob) = two_origins(&chat, "i").await;
    let mut first = connect(&oa).await;
    send_json(&mut first, json!({"op": "join"})).await;
    // Make sure the join was handled: a second join is refused.
    send_json(&mut first, json!({"op": "join"})).await;
    assert_eq!(next(&mut first).await.unwrap()["about"], "join");

    let mut second = connect(&oa).await;
    // The first page is closed with a reason...
    let closed = loop {
        match tokio::time::timeout(WAIT, first.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(
        closed.unwrap().reason.as_str(),
        "another page of this app took over"
    );
    // ...and its channel was left: the new page's join succeeds (a second
    // join would be answered with an error; the leave is answered by
    // nothing, so ask twice and see one error only).
    send_json(&mut second, json!({"op": "join"})).await;
    send_json(&mut second, json!({"op": "join"})).await;
    let v = next(&mut second).await.unwrap();
    assert_eq!(v["about"], "join");
    send_json(&mut second, json!({"op": "listen", "id": 1, "serial": 0})).await;
    assert_eq!(
        next(&mut second).await.unwrap()["op"],
        "replayed",
        "no second error"
    );
}
