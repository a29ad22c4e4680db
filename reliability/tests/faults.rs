//! Part 4 at a small scale: every fault of the part (servers killed,
//! frozen and cut off half-open on Prosody and ejabberd, rooms that remove
//! or refuse us, stream errors, hostile servers) with a short keepalive;
//! every case must hold.

use reliability::{faults, report, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_survived_at_quick_scale() {
    let rows = faults::run(Scale::Quick).await;
    report::assert_held(&rows);
}
