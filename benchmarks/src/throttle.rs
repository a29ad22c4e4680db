//! Workload 8: the library on a throttled or differently configured
//! Prosody beside our recommended configuration: latency, throughput, what
//! the clients report meanwhile (`Client::events()`) and this process's
//! memory.
//!
//! The harness is the suite's [`XmppHarness`], started with the
//! configuration's [`Options`], its clients watched through
//! [`XmppHarness::on_client`], and Prosody's config edited through
//! [`XmppHarness::with_server`] before the first measurement.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use spec_backends::xmpp::XmppHarness;
use tokio::task::JoinHandle;
use webxdc_realtime_xmpp::{Client, ClientEvent, ConnectionEvent};
use xmpp_test_server::{Options, TestServer};

use crate::params::Params;
use crate::report::ThrottleReport;
use crate::run::progress;
use crate::{sys, workloads, CONNECT_TIMEOUT, LARGE};

/// One configuration: (label, c2s rate limit, edit of the recommended
/// Prosody config as (from, to)).
pub type ThrottleConfig = (
    &'static str,
    Option<&'static str>,
    Option<(&'static str, &'static str)>,
);

const NAGLE_OFF: &str = "network_settings = { nagle = false }";

/// The configurations compared, in the report's order.
pub const CONFIGS: [ThrottleConfig; 4] = [
    ("prosody, recommended (no limit, Nagle off)", None, None),
    (
        "prosody, Nagle on (Prosody's default network_settings)",
        None,
        Some((NAGLE_OFF, "-- Nagle: Prosody's default")),
    ),
    (
        "prosody, recommended + smacks_max_unacked_stanzas = 10",
        None,
        Some((
            NAGLE_OFF,
            "network_settings = { nagle = false }\nsmacks_max_unacked_stanzas = 10",
        )),
    ),
    (
        "prosody, Debian stock c2s limit 10kb/s",
        Some("10kb/s"),
        None,
    ),
];

/// What the clients reported through `Client::events()`, counted by kind.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EventCounts {
    pub disconnected: u64,
    pub reconnect_failed: u64,
    pub reconnected: u64,
    pub closed: u64,
    pub room: u64,
    /// Events a subscriber missed because it read too slowly.
    pub lagged: u64,
}

/// Counts the events of every client it watches.
#[derive(Debug, Default)]
pub struct EventCounter {
    disconnected: AtomicU64,
    reconnect_failed: AtomicU64,
    reconnected: AtomicU64,
    closed: AtomicU64,
    room: AtomicU64,
    lagged: AtomicU64,
}

impl EventCounter {
    /// Counts `client`'s events from now on, until it closes.
    pub fn watch(self: &Arc<Self>, client: &Client) {
        let mut rx = client.events();
        let counts = self.clone();
        tokio::spawn(async move {
            let add = |n: &AtomicU64, k: u64| n.fetch_add(k, Ordering::Relaxed);
            loop {
                match rx.recv().await {
                    Some(ClientEvent::Connection(ConnectionEvent::Disconnected)) => {
                        add(&counts.disconnected, 1)
                    }
                    Some(ClientEvent::ReconnectFailed { .. }) => add(&counts.reconnect_failed, 1),
                    Some(ClientEvent::Connection(ConnectionEvent::Reconnected { .. })) => {
                        add(&counts.reconnected, 1)
                    }
                    Some(ClientEvent::Closed) => {
                        add(&counts.closed, 1);
                        break;
                    }
                    Some(ClientEvent::Room(_)) => add(&counts.room, 1),
                    Some(ClientEvent::Missed { count }) => add(&counts.lagged, count),
                    Some(_) => 0,
                    None => break,
                };
            }
        });
    }

    /// The counts so far.
    pub fn counts(&self) -> EventCounts {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        EventCounts {
            disconnected: get(&self.disconnected),
            reconnect_failed: get(&self.reconnect_failed),
            reconnected: get(&self.reconnected),
            closed: get(&self.closed),
            room: get(&self.room),
            lagged: get(&self.lagged),
        }
    }
}

/// This process's peak resident memory, sampled every 50 ms until
/// stopped.
struct RssPeak {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let task = tokio::spawn(async move {
            let mut max = 0;
            while !done.load(Ordering::Acquire) {
                max = max.max(sys::rss_kib().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            max
        });
        RssPeak { stop, task }
    }

    /// The peak in KiB (0 if it could not be read).
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap_or(0)
    }
}

/// Workload 8 on every configuration of [`CONFIGS`].
pub async fn run_all(p: &Params) -> Vec<ThrottleReport> {
    let mut reports = Vec::new();
    for (label, rate, edit) in CONFIGS {
        eprintln!("== throttle: {label}");
        reports.push(run(label, rate, edit, p).await);
    }
    reports
}

/// Replaces `from` by `to` in Prosody's config and restarts it on the same
/// port (the test server writes the recommended configuration; this takes
/// a setting out or adds one).
fn edit_config(server: &mut TestServer, from: &str, to: &str) -> io::Result<()> {
    let path = server.dir().join("prosody.cfg.lua");
    let cfg = std::fs::read_to_string(&path)?;
    if !cfg.contains(from) {
        return Err(io::Error::other(format!("{from:?} not in prosody.cfg.lua")));
    }
    std::fs::write(&path, cfg.replace(from, to))?;
    server.restart()
}

/// Workload 8 for one server configuration.
async fn run(
    label: &str,
    rate: Option<&str>,
    edit: Option<(&str, &str)>,
    p: &Params,
) -> ThrottleReport {
    let opts = Options {
        c2s_rate_limit: rate.map(str::to_owned),
        ..Options::prosody()
    };
    let events = Arc::new(EventCounter::default());
    let watcher = events.clone();
    let mut h = XmppHarness::with_options(opts)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .on_client(move |client| watcher.watch(client));
    // A configuration that cannot be set up fails every measurement with
    // the reason, as a server that does not start would.
    let setup = match edit {
        Some((from, to)) => {
            let (from, to) = (from.to_owned(), to.to_owned());
            h.with_server(move |s| edit_config(s, &from, &to))
                .await
                .map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    let rss_start = sys::rss_kib().unwrap_or(0);
    let sampler = RssPeak::start();
    let (warm, samples, timeout) = match rate {
        // One 128000-byte payload takes about 17 s at 10 kb/s.
        Some(_) => (0, p.throttled_lat_samples, Duration::from_secs(90)),
        None => (p.lat128k.0, p.lat128k.1, Duration::from_secs(20)),
    };
    // Fewer small-payload samples than workload 1: with Nagle on each
    // takes tens of milliseconds.
    let (w32, n32) = (p.lat32.0.min(20), p.lat32.1.min(200));
    let (latency_32, latency_128k, throughput) = match setup {
        Err(e) => (Err(e.clone()), Err(e.clone()), Err(e)),
        Ok(()) => {
            let latency_32 =
                workloads::latency(&mut h, 32, w32, n32, Duration::from_secs(10)).await;
            progress("latency 32 B", &latency_32);
            let latency_128k = workloads::latency(&mut h, LARGE, warm, samples, timeout).await;
            progress("latency 128000 B", &latency_128k);
            let throughput =
                workloads::throughput(&mut h, 1024, p.throttled_run, p.throughput_drain).await;
            progress("throughput", &throughput);
            (latency_32, latency_128k, throughput)
        }
    };
    let rss_max = sampler.stop().await;
    let rss_end = sys::rss_kib().unwrap_or(0);
    h.shutdown().await;
    ThrottleReport {
        label: label.to_owned(),
        c2s_rate_limit: rate.map(str::to_owned),
        config_edit: edit.map(|(_, to)| to.to_owned()),
        latency_32,
        latency_128k,
        throughput,
        events: events.counts(),
        rss_start_kib: rss_start,
        rss_max_kib: rss_max,
        rss_end_kib: rss_end,
    }
}
