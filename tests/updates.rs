//! Status updates (XEP-0491) against real Prosody and ejabberd servers
//! with room archives: every member sees every update, its own included,
//! in the room's order; a member that arrives later reads the past updates
//! from the archive, and no realtime payload is ever among them.

mod common;

use std::time::Duration;

use common::*;
use tokio::time::timeout;
use webxdc_realtime_xmpp::{
    ArchiveOutcome, Client, StatusUpdate, UpdateError, UpdateItem, Updates,
};
use xmpp_test_server::{Options, ServerKind, TestServer};

fn archived_server(kind: ServerKind) -> TestServer {
    init_tracing();
    let mut opts = Options::new(kind);
    opts.muc_archive = true;
    TestServer::start(opts).expect("start server")
}

/// The next update's payload and whether it came from the archive,
/// skipping nothing: any other item fails the test.
async fn next_update(feed: &mut Updates) -> (String, bool) {
    match timeout(PATIENCE, feed.recv())
        .await
        .expect("an update in time")
    {
        Some(UpdateItem::Update { frame, archived }) => (frame.update.payload, archived),
        other => panic!("expected an update, got {other:?}"),
    }
}

async fn archive_end(feed: &mut Updates) -> ArchiveOutcome {
    match timeout(PATIENCE, feed.recv())
        .await
        .expect("the archive's end in time")
    {
        Some(UpdateItem::ArchiveEnd(outcome)) => outcome,
        other => panic!("expected the archive's end, got {other:?}"),
    }
}

async fn updates_flow_and_are_replayed_from_the_archive(kind: ServerKind) {
    let server = archived_server(kind);
    let r = room(&server, "updates");
    let a = client(&server, "alice").await;
    let b = client(&server, "bob").await;
    let ga = a.group(r.clone()).await.unwrap();
    let gb = b.group(r.clone()).await.unwrap();
    let mut fa = ga.updates("game").await.unwrap();
    let mut fb = gb.updates("game").await.unwrap();
    assert_eq!(archive_end(&mut fa).await, ArchiveOutcome::Complete);
    assert_eq!(archive_end(&mut fb).await, ArchiveOutcome::Complete);

    // Realtime traffic in the same instance, and an update of another
    // instance: neither may appear in this instance's feed.
    let mut ca = ga.join_realtime_channel("game").unwrap();
    let mut cb = gb.join_realtime_channel("game").unwrap();
    barrier(&ca, &mut [&mut cb]).await;
    ga.send_update("other-instance", &StatusUpdate::new("\"elsewhere\""))
        .await
        .unwrap();

    let mut first = StatusUpdate::new(r#"{"move":1}"#);
    first.info = Some("Alice moved".into());
    first.summary = Some("1 move".into());
    ga.send_update("game", &first).await.unwrap();
    gb.send_update("game", &StatusUpdate::new(r#"{"move":2}"#))
        .await
        .unwrap();
    // Both members, the senders included, see both, in the same order.
    let seen_a = [next_update(&mut fa).await, next_update(&mut fa).await];
    let seen_b = [next_update(&mut fb).await, next_update(&mut fb).await];
    assert_eq!(seen_a, seen_b);
    let mut payloads: Vec<&str> = seen_a.iter().map(|(p, _)| p.as_str()).collect();
    payloads.sort();
    assert_eq!(payloads, [r#"{"move":1}"#, r#"{"move":2}"#]);
    assert!(seen_a.iter().all(|(_, archived)| !archived));
    barrier(&cb, &mut [&mut ca]).await;

    // Carol arrives later: the archive gives her both, in the room's order,
    // with every field, and nothing else.
    let c = client(&server, "carol").await;
    let gc = c.group(r.clone()).await.unwrap();
    let mut fc = gc.updates("game").await.unwrap();
    let replayed = [next_update(&mut fc).await, next_update(&mut fc).await];
    assert_eq!(
        replayed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        seen_a.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    assert!(replayed.iter().all(|(_, archived)| *archived));
    assert_eq!(archive_end(&mut fc).await, ArchiveOutcome::Complete);
    // Live updates follow the replay.
    gb.send_update("game", &StatusUpdate::new(r#"{"move":3}"#))
        .await
        .unwrap();
    assert_eq!(next_update(&mut fc).await, (r#"{"move":3}"#.into(), false));
    assert_eq!(next_update(&mut fa).await, (r#"{"move":3}"#.into(), false));

    // The fields survive the archive.
    let mut fd = gc.updates("game").await.unwrap();
    let mut replayed_first = None;
    for _ in 0..3 {
        match timeout(PATIENCE, fd.recv()).await.unwrap() {
            Some(UpdateItem::Update {
                frame,
                archived: true,
            }) => {
                if frame.update.payload == first.payload {
                    replayed_first = Some(frame.update);
                }
            }
            other => panic!("expected an archived update, got {other:?}"),
        }
    }
    assert_eq!(replayed_first, Some(first));

    for c in [a, b, c] {
        c.shutdown().await;
    }
}

#[tokio::test]
async fn prosody_updates_flow_and_are_replayed_from_the_archive() {
    updates_flow_and_are_replayed_from_the_archive(ServerKind::Prosody).await;
}

#[tokio::test]
async fn ejabberd_updates_flow_and_are_replayed_from_the_archive() {
    updates_flow_and_are_replayed_from_the_archive(ServerKind::Ejabberd).await;
}

/// Without an archive the feed says so and live updates still flow.
#[tokio::test]
async fn without_an_archive_the_feed_says_so_and_goes_live() {
    let server = prosody();
    let r = room(&server, "no-archive");
    let a = client(&server, "alice").await;
    let ga = a.group(r).await.unwrap();
    let mut fa = ga.updates("t").await.unwrap();
    match archive_end(&mut fa).await {
        ArchiveOutcome::Failed(_) | ArchiveOutcome::Complete => {}
        other => panic!("unexpected {other:?}"),
    }
    ga.send_update("t", &StatusUpdate::new("1")).await.unwrap();
    assert_eq!(next_update(&mut fa).await, ("1".into(), false));
}

/// Bad updates are refused before anything is sent.
#[tokio::test]
async fn bad_updates_are_refused_locally() {
    let server = prosody();
    let r = room(&server, "bad-updates");
    let a: Client = client(&server, "alice").await;
    let ga = a.group(r).await.unwrap();
    let mut fa = ga.updates("t").await.unwrap();
    archive_end(&mut fa).await;
    assert!(matches!(
        ga.send_update("t", &StatusUpdate::new("{nope")).await,
        Err(UpdateError::NotJson(_))
    ));
    assert!(matches!(
        ga.send_update(
            "t",
            &StatusUpdate::new(format!("\"{}\"", "x".repeat(128_001)))
        )
        .await,
        Err(UpdateError::TooLarge { .. })
    ));
    assert_eq!(
        ga.send_update("", &StatusUpdate::new("1")).await,
        Err(UpdateError::InvalidThread)
    );
    // The connection is untouched: a good update still goes through, and
    // it is the first thing the feed sees.
    ga.send_update("t", &StatusUpdate::new("2")).await.unwrap();
    assert_eq!(
        timeout(Duration::from_secs(20), fa.recv())
            .await
            .unwrap()
            .map(|i| matches!(i, UpdateItem::Update { frame, .. } if frame.update.payload == "2")),
        Some(true)
    );
}
