//! Workload 6: resident memory the library adds per XMPP connection and per
//! joined channel.
//!
//! Runs in a child process of the benchmark (`--memory-child`, see
//! [`run_in_child`] and [`child_main`]) so that the heap is fresh: in the
//! parent, memory freed by earlier workloads would be reused by the
//! allocator and hide what new connections cost.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spec_backends::xmpp::XmppHarness;
use webxdc_realtime_xmpp::jid::BareJid;
use xmpp_test_server::Options;

use crate::params::Params;
use crate::report::Res;
use crate::sys::{rss_kib, rss_kib_of};
use crate::CONNECT_TIMEOUT;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    pub connections: usize,
    /// VmRSS added per connected client (KiB).
    pub per_connection_kib: f64,
    /// The server's VmRSS added per connection (KiB), for operators.
    pub server_per_connection_kib: Option<f64>,
    pub rooms: usize,
    /// VmRSS added per entered MUC room on one connection (KiB).
    pub per_room_kib: f64,
    pub channels: usize,
    /// VmRSS added per joined realtime channel on one connection (KiB).
    pub per_channel_kib: f64,
    /// This process's VmRSS before the first measured connection (KiB).
    pub baseline_kib: u64,
}

/// Lets background work (logins finishing, buffers shrinking) settle
/// before a reading.
async fn settle() -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss_kib().unwrap_or(0)
}

pub async fn measure(connections: usize, rooms: usize, channels: usize) -> Result<Memory, String> {
    // Only the harness's server and its `connect`: these clients are in no
    // chat of the harness.
    let mut h = XmppHarness::with_options(Options::prosody()).with_connect_timeout(CONNECT_TIMEOUT);
    let (pid, muc) = h
        .with_server(|s| Ok((s.pid(), s.muc_domain().to_owned())))
        .await
        .map_err(|e| e.to_string())?;
    // The first client pays for one-time costs (lazy statics, runtime
    // threads, TLS-free connector state): it is not counted.
    let first = h.connect("warmup").await.map_err(|e| e.to_string())?;
    let before = settle().await;
    let server_before = rss_kib_of(pid);
    let mut clients = Vec::with_capacity(connections);
    for i in 0..connections {
        clients.push(
            h.connect(&format!("m{i}"))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let after = settle().await;
    let server_after = rss_kib_of(pid);

    // Rooms, on the first client.
    let room = |i: usize| -> Result<BareJid, String> {
        format!("mem{i}@{muc}").parse().map_err(|e| format!("{e}"))
    };
    let warm = first.group(room(0)?).await.map_err(|e| e.to_string())?;
    let rooms_before = settle().await;
    let mut groups = Vec::with_capacity(rooms);
    for i in 1..=rooms {
        groups.push(first.group(room(i)?).await.map_err(|e| e.to_string())?);
    }
    let rooms_after = settle().await;

    // Channels, in one room of the first client.
    let mut held = Vec::with_capacity(channels + 10);
    for i in 0..10 {
        held.push(
            warm.join_realtime_channel(&format!("warm-{i}"))
                .map_err(|e| e.to_string())?,
        );
    }
    let ch_before = settle().await;
    for i in 0..channels {
        held.push(
            warm.join_realtime_channel(&format!("instance-{i:06}"))
                .map_err(|e| e.to_string())?,
        );
    }
    let ch_after = settle().await;

    let per = |a: u64, b: u64, n: usize| (a as f64 - b as f64) / n.max(1) as f64;
    let result = Memory {
        connections,
        per_connection_kib: per(after, before, connections),
        server_per_connection_kib: match (server_before, server_after) {
            (Some(b), Some(a)) => Some(per(a, b, connections)),
            _ => None,
        },
        rooms,
        per_room_kib: per(rooms_after, rooms_before, rooms),
        channels,
        per_channel_kib: per(ch_after, ch_before, channels),
        baseline_kib: before,
    };
    drop(held);
    drop(groups);
    for c in clients.into_iter().chain([first]) {
        let _ = tokio::time::timeout(Duration::from_secs(3), c.shutdown()).await;
    }
    h.shutdown().await;
    Ok(result)
}

/// Workload 6 in a fresh child process of this executable (whose `main`
/// hands `--memory-child` to [`child_main`]).
pub async fn run_in_child(p: &Params) -> Res<Memory> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (c, r, ch) = p.memory;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--memory-child",
        &c.to_string(),
        &r.to_string(),
        &ch.to_string(),
    ]);
    // Blocking wait, off the async workers.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "memory child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).map_err(|e| format!("memory child: {e}: {text}"))
}

/// The `--memory-child` entry point: measures and prints JSON.
pub fn child_main(args: &[String]) {
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let result = rt.block_on(measure(n(0, 100), n(1, 100), n(2, 1000)));
    match result {
        Ok(m) => println!("{}", serde_json::to_string(&m).expect("serialises")),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
