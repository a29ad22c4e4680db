//! Workload 8: the library on Prosody and ejabberd configured in
//! different ways, each beside the configuration the test server
//! generates (our recommended one): 32-byte and 128000-byte latency,
//! fan-out to 32, 1 KiB throughput, what the clients report meanwhile
//! (`Client::events()`) and this process's memory.
//!
//! Every configuration is a [`Setup`]: the generated config with
//! [`Edit`]s applied (text replaced or added in the config file, Erlang VM
//! flags for ejabberd) and the server restarted on the same port through
//! [`XmppHarness::with_server`] before the first measurement. All run the
//! same measuring code. [`SETUPS`] lists them: per server, the generated
//! configuration first, one setting changed per row, Debian's stock
//! throttling as a reference, the winners combined, and the generated
//! configuration again at the end (the difference between the two is the
//! run's noise).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use spec_backends::xmpp::XmppHarness;
use tokio::task::JoinHandle;
use webxdc_realtime_xmpp::{Client, ClientEvent, ConnectionEvent};
use xmpp_test_server::{Options, ServerKind, TestServer};

use crate::params::Params;
use crate::report::ThrottleReport;
use crate::run::progress;
use crate::{sys, workloads, CONNECT_TIMEOUT, LARGE};

/// One change to the generated server configuration.
#[derive(Debug, Clone, Copy)]
pub enum Edit {
    /// Replaces the first text by the second in the config file (which
    /// must contain it).
    Replace(&'static str, &'static str),
    /// Adds lines to the config's global section (Prosody: before the
    /// `VirtualHost` line; ejabberd: before `listen:`).
    Global(&'static str),
    /// Flags for the Erlang VM (ejabberd), passed through the environment
    /// (`ERL_OTP<release>_FLAGS`), which `erlexec` adds to its command
    /// line.
    VmFlags(&'static str),
}

impl Edit {
    /// How the edit reads in the report.
    fn describe(&self) -> String {
        match self {
            Edit::Replace(_, to) | Edit::Global(to) => to.trim().replace('\n', "; "),
            Edit::VmFlags(f) => format!("erl {f}"),
        }
    }
}

/// What a configuration is in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The generated (recommended) configuration, which the others are
    /// compared with.
    Baseline,
    /// One setting changed.
    Candidate,
    /// A configuration found in the field (Debian's stock throttling).
    Reference,
    /// The winners combined.
    Best,
    /// The baseline once more, at the end: the run's drift and noise.
    BaselineAgain,
}

/// One server configuration of workload 8.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub label: &'static str,
    pub kind: ServerKind,
    pub role: Role,
    /// [`Options::c2s_rate_limit`].
    pub rate: Option<&'static str>,
    pub edits: &'static [Edit],
}

const fn setup(label: &'static str, kind: ServerKind, role: Role, edits: &'static [Edit]) -> Setup {
    Setup {
        label,
        kind,
        role,
        rate: None,
        edits,
    }
}

use Edit::{Global, Replace, VmFlags};
use Role::{Baseline, BaselineAgain, Best, Candidate, Reference};
use ServerKind::{Ejabberd, Prosody};

/// The network settings line the test server writes for Prosody.
const NAGLE_OFF: &str = "network_settings = { nagle = false }";
/// ejabberd's stream management as the test server writes it.
const SM: &str = "  mod_stream_mgmt: {}\n";
/// ejabberd's c2s listener (the line that starts its options).
const C2S: &str = "    module: ejabberd_c2s\n";
/// ejabberd's MUC history as the test server writes it.
const MUC_HISTORY: &str = "    history_size: 0\n";

/// Debian's stock `/etc/ejabberd/ejabberd.yml` shapers (23.01), applied
/// to our c2s listener as the stock config applies them to its own.
const EJABBERD_STOCK_SHAPERS: [Edit; 2] = [
    Global(
        "shaper:\n  normal:\n    rate: 3000\n    burst_size: 20000\n  fast: 200000\n\
         shaper_rules:\n  c2s_shaper:\n    none: admin\n    normal: all\n",
    ),
    Replace(C2S, "    module: ejabberd_c2s\n    shaper: c2s_shaper\n"),
];

/// The configurations compared, in the report's order. The `Best` rows
/// are the winners of the full run's candidates (docs/operators.md,
/// "Tuning, measured").
pub const SETUPS: &[Setup] = &[
    // Prosody 0.12.
    setup("prosody: generated (recommended)", Prosody, Baseline, &[]),
    setup(
        "prosody: Nagle on (Prosody's default)",
        Prosody,
        Candidate,
        &[Replace(NAGLE_OFF, "-- Nagle: Prosody's default (on)")],
    ),
    setup(
        "prosody: read_size = 65536 (default 8192)",
        Prosody,
        Candidate,
        &[Replace(
            NAGLE_OFF,
            "network_settings = { nagle = false; read_size = 65536 }",
        )],
    ),
    setup(
        "prosody: read_size = 262144",
        Prosody,
        Candidate,
        &[Replace(
            NAGLE_OFF,
            "network_settings = { nagle = false; read_size = 262144 }",
        )],
    ),
    setup(
        "prosody: opportunistic_writes = true",
        Prosody,
        Candidate,
        &[Replace(
            NAGLE_OFF,
            "network_settings = { nagle = false; opportunistic_writes = true }",
        )],
    ),
    setup(
        "prosody: network_backend = \"select\" (default epoll)",
        Prosody,
        Candidate,
        &[Global("network_backend = \"select\"")],
    ),
    setup(
        "prosody: smacks_max_unacked_stanzas = 10 (default 0)",
        Prosody,
        Candidate,
        &[Global("smacks_max_unacked_stanzas = 10")],
    ),
    setup(
        "prosody: smacks_max_unacked_stanzas = 100",
        Prosody,
        Candidate,
        &[Global("smacks_max_unacked_stanzas = 100")],
    ),
    setup(
        "prosody: smacks_max_ack_delay = 5 (default 30)",
        Prosody,
        Candidate,
        &[Global("smacks_max_ack_delay = 5")],
    ),
    setup(
        "prosody: MUC history default (20)",
        Prosody,
        Candidate,
        &[Replace(
            "\tmuc_room_default_history_length = 0\n",
            "\t-- muc_room_default_history_length: Prosody's default (20)\n",
        )],
    ),
    setup(
        "prosody: gc generational (default incremental)",
        Prosody,
        Candidate,
        &[Global("gc = { mode = \"generational\" }")],
    ),
    setup(
        "prosody: gc incremental, threshold 400 (default 105)",
        Prosody,
        Candidate,
        &[Global("gc = { mode = \"incremental\"; threshold = 400 }")],
    ),
    Setup {
        rate: Some("1mb/s"),
        ..setup("prosody: limits on, c2s 1mb/s", Prosody, Candidate, &[])
    },
    Setup {
        rate: Some("10kb/s"),
        ..setup(
            "prosody: Debian stock limits, c2s 10kb/s",
            Prosody,
            Reference,
            &[],
        )
    },
    setup(
        "prosody: best (smacks 10, gc generational)",
        Prosody,
        Best,
        &[
            Global("smacks_max_unacked_stanzas = 10"),
            Global("gc = { mode = \"generational\" }"),
        ],
    ),
    setup("prosody: generated, again", Prosody, BaselineAgain, &[]),
    // ejabberd 23.01.
    setup("ejabberd: generated (recommended)", Ejabberd, Baseline, &[]),
    setup(
        "ejabberd: erl +sbwt none (no scheduler busy wait)",
        Ejabberd,
        Candidate,
        &[VmFlags("+sbwt none +sbwtdcpu none +sbwtdio none")],
    ),
    setup(
        "ejabberd: erl +K true +P 250000 (as ejabberdctl)",
        Ejabberd,
        Candidate,
        &[VmFlags("+K true +P 250000")],
    ),
    setup(
        "ejabberd: erl +S 1 (one scheduler)",
        Ejabberd,
        Candidate,
        &[VmFlags("+S 1:1")],
    ),
    setup(
        "ejabberd: max_fsm_queue 100000 (default 10000)",
        Ejabberd,
        Candidate,
        &[Global("max_fsm_queue: 100000\n")],
    ),
    setup(
        "ejabberd: max_ack_queue infinity (default 5000)",
        Ejabberd,
        Candidate,
        &[Replace(
            SM,
            "  mod_stream_mgmt:\n    max_ack_queue: infinity\n",
        )],
    ),
    setup(
        "ejabberd: max_ack_queue 100",
        Ejabberd,
        Candidate,
        &[Replace(SM, "  mod_stream_mgmt:\n    max_ack_queue: 100\n")],
    ),
    setup(
        "ejabberd: resend_on_timeout if_offline, ack_timeout 10 s",
        Ejabberd,
        Candidate,
        &[Replace(
            SM,
            "  mod_stream_mgmt:\n    resend_on_timeout: if_offline\n    ack_timeout: 10\n",
        )],
    ),
    setup(
        "ejabberd: no stream management",
        Ejabberd,
        Candidate,
        &[Replace(SM, "")],
    ),
    setup(
        "ejabberd: MUC history_size default (20)",
        Ejabberd,
        Candidate,
        &[Replace(MUC_HISTORY, "")],
    ),
    setup(
        "ejabberd: MUC max_users_presence 10 (default 1000)",
        Ejabberd,
        Candidate,
        &[Replace(
            MUC_HISTORY,
            "    history_size: 0\n    max_users_presence: 10\n",
        )],
    ),
    setup(
        "ejabberd: shaper 1 MB/s on c2s",
        Ejabberd,
        Candidate,
        &[
            Global("shaper:\n  realtime: 1000000\nshaper_rules:\n  c2s_shaper: realtime\n"),
            Replace(C2S, "    module: ejabberd_c2s\n    shaper: c2s_shaper\n"),
        ],
    ),
    setup(
        "ejabberd: Debian stock shapers (c2s 3000 B/s, burst 20000)",
        Ejabberd,
        Reference,
        &EJABBERD_STOCK_SHAPERS,
    ),
    setup(
        "ejabberd: best (+sbwt none)",
        Ejabberd,
        Best,
        &[VmFlags("+sbwt none +sbwtdcpu none +sbwtdio none")],
    ),
    setup("ejabberd: generated, again", Ejabberd, BaselineAgain, &[]),
];

/// Whether `s` runs in this mode: quick mode (CI: that it runs) measures
/// the generated and the best configuration of each server and Prosody's
/// stock limit; ejabberd's stock shaper (3000 B/s) needs about a minute
/// per 128000-byte payload.
fn runs(s: &Setup, p: &Params) -> bool {
    if let Ok(only) = std::env::var("BENCH_THROTTLE_ONLY") {
        // Development: a comma-separated list of label substrings.
        return only
            .split(',')
            .any(|w| !w.is_empty() && s.label.contains(w));
    }
    !p.quick || matches!(s.role, Baseline | Best) || (s.role == Reference && s.kind == Prosody)
}

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

/// Workload 8 on every configuration of [`SETUPS`] that runs in this
/// mode.
pub async fn run_all(p: &Params) -> Vec<ThrottleReport> {
    let mut reports = Vec::new();
    for s in SETUPS.iter().filter(|s| runs(s, p)) {
        let load = sys::loadavg();
        eprintln!("== throttle: {} (load {load})", s.label);
        let mut r = run(s, p).await;
        r.load = load;
        reports.push(r);
    }
    reports
}

/// Applies `edits` to the server's config file and restarts it on the
/// same port, with the VM flags in the environment of the new process.
fn apply(server: &mut TestServer, edits: &[Edit]) -> io::Result<()> {
    let file = match server.kind() {
        ServerKind::Prosody => "prosody.cfg.lua",
        ServerKind::Ejabberd => "ejabberd.yml",
    };
    let path = server.dir().join(file);
    let mut cfg = std::fs::read_to_string(&path)?;
    let mut flags = Vec::new();
    for e in edits {
        match *e {
            Edit::Replace(from, to) => {
                if !cfg.contains(from) {
                    return Err(io::Error::other(format!("{from:?} not in {file}")));
                }
                cfg = cfg.replacen(from, to, 1);
            }
            Edit::Global(lines) => {
                let anchor = match server.kind() {
                    ServerKind::Prosody => "\nVirtualHost ",
                    ServerKind::Ejabberd => "\nlisten:\n",
                };
                let at = cfg
                    .find(anchor)
                    .ok_or_else(|| io::Error::other(format!("{anchor:?} not in {file}")))?;
                cfg.insert_str(at + 1, &format!("{}\n", lines.trim_end()));
            }
            Edit::VmFlags(f) => flags.push(f),
        }
    }
    std::fs::write(&path, cfg)?;
    if flags.is_empty() {
        return server.restart();
    }
    if server.kind() != ServerKind::Ejabberd {
        return Err(io::Error::other("VM flags are for ejabberd"));
    }
    let flags = flags.join(" ");
    // The test server scrubs ERL_FLAGS, ERL_AFLAGS and ERL_ZFLAGS from the
    // server's environment (against flags picked up by accident); erlexec
    // also reads ERL_OTP<release>_FLAGS, which is set here on purpose, for
    // this restart only (on the blocking thread of `with_server`; nothing
    // else of the benchmark reads the environment meanwhile), and checked
    // below in the VM's command line.
    let var = format!("ERL_OTP{}_FLAGS", otp_release()?);
    std::env::set_var(&var, &flags);
    let restarted = server.restart();
    std::env::remove_var(&var);
    restarted?;
    // erl execs erlexec, which execs the VM: the same pid, whose command
    // line shows whether the flags arrived.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid()))?;
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let wanted: Vec<&str> = flags.split_whitespace().collect();
    // erlexec passes `+F V` to the VM as `-F V`.
    let found = wanted.chunks(2).all(|pair| {
        let flag = pair[0].replacen('+', "-", 1);
        args.windows(pair.len())
            .any(|w| w[0] == flag && (pair.len() == 1 || w[1] == pair[1]))
    });
    if !found {
        return Err(io::Error::other(format!(
            "the VM's command line lacks {flags}: {}",
            args.join(" ")
        )));
    }
    Ok(())
}

/// The Erlang/OTP release `erl` runs (`25` on Debian 12).
fn otp_release() -> io::Result<String> {
    let out = std::process::Command::new("erl")
        .args([
            "-noshell",
            "-eval",
            "io:format(\"~s\", [erlang:system_info(otp_release)]), halt().",
        ])
        .env("ERL_CRASH_DUMP", "/dev/null")
        .output()?;
    let release = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if release.is_empty() || !release.bytes().all(|b| b.is_ascii_digit()) {
        return Err(io::Error::other(format!(
            "cannot tell the OTP release of erl: {release:?}"
        )));
    }
    Ok(release)
}

/// Errors the server logged since it started with this configuration (a
/// setting it refused would otherwise be measured as if it applied).
fn logged_errors(server: &TestServer) -> Vec<String> {
    server
        .log_tail(400)
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("\terror\t") || l.contains("[error]") || l.contains("[critical]")
        })
        .map(str::to_owned)
        .collect()
}

/// Workload 8 for one server configuration.
async fn run(s: &Setup, p: &Params) -> ThrottleReport {
    let opts = Options {
        c2s_rate_limit: s.rate.map(str::to_owned),
        ..Options::new(s.kind)
    };
    let events = Arc::new(EventCounter::default());
    let watcher = events.clone();
    let mut h = XmppHarness::with_options(opts)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .on_client(move |client| watcher.watch(client));
    // A configuration that cannot be set up fails every measurement with
    // the reason, as a server that does not start would.
    let edits = s.edits;
    let setup = h
        .with_server(move |server| {
            if !edits.is_empty() {
                apply(server, edits)?;
            }
            let errors = logged_errors(server);
            if errors.is_empty() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "the server logged errors: {}",
                    errors.join(" / ")
                )))
            }
        })
        .await
        .map_err(|e| e.to_string());
    let rss_start = sys::rss_kib().unwrap_or(0);
    let sampler = RssPeak::start();
    // Debian's stock throttling: few large samples, a longer run.
    let slow = s.role == Reference;
    let (warm, samples, timeout, run_for) = if slow {
        // One 128000-byte payload takes about 17 s at 10 kb/s (Prosody),
        // about 50 s at ejabberd's stock 3000 B/s.
        (
            0,
            p.throttled_lat_samples,
            Duration::from_secs(90),
            p.throttled_run,
        )
    } else {
        (
            p.lat128k.0,
            p.lat128k.1,
            Duration::from_secs(20),
            p.throughput_run,
        )
    };
    // Fewer small-payload samples than workload 1: with Nagle on each
    // takes tens of milliseconds.
    let (w32, n32) = (p.lat32.0.min(20), p.lat32.1.min(200));
    let fan_budget = Duration::from_secs(if p.quick { 10 } else { 60 });
    let (latency_32, fanout_32, latency_128k, throughput) = match setup {
        Err(e) => {
            eprintln!("   setup: FAILED: {e}");
            (Err(e.clone()), Err(e.clone()), Err(e.clone()), Err(e))
        }
        Ok(()) => {
            let latency_32 =
                workloads::latency(&mut h, 32, w32, n32, Duration::from_secs(10)).await;
            progress("latency 32 B", &latency_32);
            // Before the flood of the throughput run, which may leave a
            // backlog behind on a throttled server.
            let fanout_32 = workloads::fanout(
                &mut h,
                32,
                32,
                p.fanout_samples,
                Duration::from_secs(2),
                fan_budget,
            )
            .await;
            progress("fan-out 32", &fanout_32);
            let latency_128k = workloads::latency(&mut h, LARGE, warm, samples, timeout).await;
            progress("latency 128000 B", &latency_128k);
            let throughput = workloads::throughput(&mut h, 1024, run_for, p.throughput_drain).await;
            progress("throughput", &throughput);
            (latency_32, fanout_32, latency_128k, throughput)
        }
    };
    let rss_max = sampler.stop().await;
    let rss_end = sys::rss_kib().unwrap_or(0);
    // What the server said about a failed run (a closed session, a
    // kicked occupant), for whoever reads the run's output.
    if latency_32.is_err() || throughput.is_err() || fanout_32.is_err() {
        let tail = h.with_server(|server| Ok(server.log_tail(60))).await;
        if let Ok(tail) = tail {
            eprintln!("   server log tail:\n{tail}");
        }
    }
    h.shutdown().await;
    ThrottleReport {
        label: s.label.to_owned(),
        server: s.kind.to_string(),
        role: s.role,
        c2s_rate_limit: s.rate.map(str::to_owned),
        config_edits: s.edits.iter().map(Edit::describe).collect(),
        latency_32,
        fanout_32,
        latency_128k,
        throughput,
        events: events.counts(),
        rss_start_kib: rss_start,
        rss_max_kib: rss_max,
        rss_end_kib: rss_end,
        load: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server's rows start with its baseline (the ratios are taken
    /// against it) and the labels are unique (the docs name rows by label).
    #[test]
    fn setups_are_well_formed() {
        for kind in [Prosody, Ejabberd] {
            let rows: Vec<&Setup> = SETUPS.iter().filter(|s| s.kind == kind).collect();
            assert_eq!(rows.first().map(|s| s.role), Some(Baseline), "{kind}");
            assert_eq!(rows.iter().filter(|s| s.role == Best).count(), 1, "{kind}");
            for s in &rows {
                assert!(s.label.starts_with(&kind.to_string()), "{}", s.label);
                let vm = s.edits.iter().any(|e| matches!(e, VmFlags(_)));
                assert!(!vm || kind == Ejabberd, "{}", s.label);
            }
        }
        let mut labels: Vec<&str> = SETUPS.iter().map(|s| s.label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), SETUPS.len());
    }
}
