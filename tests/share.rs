//! Sharing an app against a real Prosody with HTTP upload: the upload
//! service is found, a slot is handed out and works, and a shared app sent
//! by one client is recognised by another (live and from the archive) with
//! the same thread, URL and name.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{client, room};
use webxdc_realtime_xmpp::{ClientEvent, EngineEvent, SharedApp};
use xmpp_test_server::{Options, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn server() -> TestServer {
    TestServer::start(Options {
        http_upload: true,
        muc_archive: true,
        ..Options::prosody()
    })
    .unwrap()
}

/// A blocking HTTP/1.1 request to the loopback upload server.
fn http(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test]
async fn the_upload_service_is_found_and_its_slot_works() {
    let server = server();
    let alice = client(&server, "alice").await;
    let service = tokio::time::timeout(WAIT, alice.upload_service())
        .await
        .unwrap()
        .unwrap()
        .expect("an upload service");
    assert_eq!(service.jid.to_string(), server.http_upload().unwrap().0);
    let slot = tokio::time::timeout(
        WAIT,
        alice.request_upload_slot(&service, "board.xdc", 5, Some("application/xdc+zip")),
    )
    .await
    .unwrap()
    .unwrap();
    let put = http("PUT", &slot.put_url, &slot.put_headers, b"hello");
    assert!(put.starts_with("HTTP/1.1 201"), "{put}");
    let get = http("GET", &slot.get_url, &[], b"");
    assert!(
        get.starts_with("HTTP/1.1 200") && get.ends_with("hello"),
        "{get}"
    );
    // Without its headers the PUT is refused: the slot's headers matter.
    let slot2 = alice
        .request_upload_slot(&service, "other.xdc", 5, None)
        .await
        .unwrap();
    let put = http("PUT", &slot2.put_url, &[], b"hello");
    assert!(!put.starts_with("HTTP/1.1 201"), "{put}");
    alice.shutdown().await;
}

#[tokio::test]
async fn a_shared_app_is_recognised_live_and_in_the_archive() {
    let server = server();
    let r = room(&server, "apps");
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    let a = alice.group(r.clone()).await.unwrap();
    let b = bob.group(r.clone()).await.unwrap();
    let mut bob_events = bob.events();
    let app = SharedApp {
        thread: "instance-1".into(),
        url: "http://127.0.0.1:1/f/board.xdc".into(),
        name: Some("board.xdc".into()),
        size: Some(5),
        media_type: Some("application/xdc+zip".into()),
        sha256: Some(vec![1; 32]),
    };
    a.share_app(&app).await.unwrap();
    let live = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(ClientEvent::Room(EngineEvent::AppShared { frame, .. })) =
                bob_events.recv().await
            {
                return frame;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(live.app, app);
    assert_eq!(live.from.resource().map(|r| r.as_str()), Some(alice.nick()));

    // A member that comes later finds it in the archive.
    let carol = client(&server, "carol").await;
    let c = carol.group(r.clone()).await.unwrap();
    let listed = tokio::time::timeout(WAIT, c.shared_apps())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].app, app);
    drop(b);
    for cl in [alice, bob, carol] {
        cl.shutdown().await;
    }
}
