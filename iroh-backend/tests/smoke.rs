//! The two variants differ exactly where Delta Chat core breaks the
//! contract's local rules (size limit, double join, send after leave).
//! Delivery itself is covered by the suite (tests/conformance.rs).

use iroh_backend::IrohHarness;
use spec_tests::harness::{Channel, Harness, JoinFailure, SendFailure};

/// Iroh's port mapper probes the default gateway; move the whole test
/// process into a loopback-only network namespace before any thread starts.
#[ctor::ctor]
fn isolate_network() {
    if let Err(e) = iroh_backend::netns::isolate() {
        eprintln!("iroh-backend: cannot isolate the network: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rejects_what_deltachat_accepts() {
    let mut h = IrohHarness::fixed();
    let chat = h.new_chat(1).await.expect("chat");
    let mut a = h
        .join(&chat, 0, "app")
        .await
        .expect("harness")
        .expect("join");
    assert_eq!(
        h.join(&chat, 0, "app").await.expect("harness").err(),
        Some(JoinFailure::AlreadyJoined)
    );
    assert_eq!(a.send(&vec![0; 128_001]).await, Err(SendFailure::TooLarge));
    a.leave().await;
    assert_eq!(a.send(b"x").await, Err(SendFailure::Left));

    let mut h = IrohHarness::deltachat();
    let chat = h.new_chat(1).await.expect("chat");
    let mut a = h
        .join(&chat, 0, "app")
        .await
        .expect("harness")
        .expect("join");
    assert!(h.join(&chat, 0, "app").await.expect("harness").is_ok());
    assert_eq!(a.send(&vec![0; 128_001]).await, Ok(()));
    a.leave().await;
    assert_eq!(a.send(b"x").await, Ok(()));
}
