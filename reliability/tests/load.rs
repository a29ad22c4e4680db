//! Part 2 at a small scale: a few peers at a fixed rate on Prosody and
//! ejabberd, 1 KiB and 128000-byte payloads; every case must hold.

use reliability::{load, report, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_holds_at_quick_scale() {
    let rows = load::run(Scale::Quick).await;
    report::assert_held(&rows);
}
