//! One benchmark run: every selected section in turn, into one [`Report`].
//!
//! Sections: workloads 1-5 on each backend of [`BACKENDS`] (here), workload
//! 6 in a child process ([`memory`]), workload 7 ([`wire_cost`]),
//! workload 8 ([`throttle`]) and the round trip through the host
//! ([`host_rtt`]).

use std::time::{Duration, Instant};

use spec_backends::xmpp::XmppHarness;
use spec_tests::harness::Harness;

use crate::floors::{Floor, FloorHarness};
use crate::memory::{self, Memory};
use crate::params::Params;
use crate::report::{BackendReport, Report, Res};
use crate::sys::Machine;
use crate::wire_cost::{self, Fixture};
use crate::xmpp_floor::XmppFloorHarness;
use crate::{host_rtt, throttle, workloads, LARGE};

/// The order backends run in, and the table's column order.
pub const BACKENDS: &[&str] = &[
    "xmpp-prosody",
    "xmpp-ejabberd",
    "xmpp-federated",
    "xmpp-ejabberd-cluster",
    "iroh-deltachat",
    "xmpp-floor",
    "tcp-direct",
    "tcp-relay",
];

/// Whether `--only` (if given) selects `name` (a backend or a section:
/// `memory`, `wire`, `throttle`, `host-rtt`).
pub fn selected(only: Option<&[String]>, name: &str) -> bool {
    only.is_none_or(|o| o.iter().any(|n| n == name))
}

/// Runs every selected section. `args` is the command line, for the
/// report.
pub async fn run(
    params: &Params,
    only: Option<&[String]>,
    machine: Machine,
    args: &[String],
) -> Report {
    let backends = run_backends(params, only).await;
    let memory: Res<Memory> = if selected(only, "memory") {
        eprintln!("== memory");
        memory::run_in_child(params).await
    } else {
        Err("not run".into())
    };
    let (wire, callgrind_note) = if selected(only, "wire") {
        eprintln!("== wire");
        wire_cost::run(params).await
    } else {
        (Vec::new(), "not run".into())
    };
    let throttle = if selected(only, "throttle") {
        throttle::run_all(params).await
    } else {
        Vec::new()
    };
    let host_rtt = if selected(only, host_rtt::SECTION) {
        host_rtt::run_all(params).await
    } else {
        Vec::new()
    };
    Report {
        mode: if params.quick { "quick" } else { "full" }.into(),
        command: format!("cargo run --release -p benchmarks -- {}", args.join(" ")),
        machine,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        wall_s: 0.0,
        backends,
        wire,
        callgrind_note,
        memory,
        throttle,
        host_rtt,
        targets: Vec::new(),
        notes: notes(params),
    }
}

/// Workloads 1-5 on every selected backend, one after the other.
async fn run_backends(params: &Params, only: Option<&[String]>) -> Vec<BackendReport> {
    let mut backends = Vec::new();
    for &name in BACKENDS {
        if !selected(only, name) {
            continue;
        }
        eprintln!("== {name}");
        let t0 = Instant::now();
        let mut r = match name {
            "xmpp-prosody" => {
                let (r, h) = run_backend(XmppHarness::prosody(), params).await;
                drop_off_runtime(h).await;
                r
            }
            "xmpp-ejabberd" => {
                let (r, h) = run_backend(XmppHarness::ejabberd(), params).await;
                drop_off_runtime(h).await;
                r
            }
            "xmpp-federated" => {
                let (r, h) = run_backend(XmppHarness::federated(), params).await;
                drop_off_runtime(h).await;
                r
            }
            "xmpp-ejabberd-cluster" => {
                let (r, h) = run_backend(XmppHarness::ejabberd_cluster(), params).await;
                drop_off_runtime(h).await;
                r
            }
            "iroh-deltachat" => {
                let (r, h) = run_backend(iroh_backend::IrohHarness::deltachat(), params).await;
                // Its Drop closes the endpoints through the runtime.
                drop(h);
                tokio::time::sleep(Duration::from_secs(1)).await;
                r
            }
            "xmpp-floor" => {
                let (r, h) = run_backend(XmppFloorHarness::new(), params).await;
                h.shutdown().await;
                r
            }
            "tcp-direct" => {
                run_backend(FloorHarness::new(Floor::Direct), params)
                    .await
                    .0
            }
            _ => run_backend(FloorHarness::new(Floor::Relay), params).await.0,
        };
        r.name = name.to_owned();
        r.wall_s = t0.elapsed().as_secs_f64();
        fill_sender_bytes(&mut r);
        backends.push(r);
    }
    backends
}

/// What the report says about how it measured.
fn notes(params: &Params) -> Vec<String> {
    let mut notes = vec![
        "Latency is one-way, one payload in flight, sender and receiver in one process on one \
         monotonic clock; percentiles are nearest-rank."
            .to_owned(),
        "Sender bytes: XMPP = the serialised <message/> (minidom text of wire::encode, \
         about 20 B more than on the stream, which omits xmlns='jabber:client'); TCP floors = \
         exact (4-byte length + payload, once per connection written); Iroh = n/a (iroh 0.35 \
         keeps its counters behind the `metrics` feature and the backend's endpoints are \
         private). Loopback bytes = every byte all processes put on lo per payload (IP/TCP/UDP \
         headers, acks, every hop), measured in the benchmark's own network namespace."
            .to_owned(),
    ];
    if params.quick {
        notes.push("Quick mode: few samples; the figures are not meaningful.".into());
    }
    notes
}

/// The suite's XMPP harness stops its server in `Drop`; off the runtime
/// that happens synchronously, so the next backend does not run beside a
/// server that is still shutting down.
async fn drop_off_runtime<H: Harness + 'static>(h: H) {
    let _ = tokio::task::spawn_blocking(move || std::thread::spawn(move || drop(h)).join()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Workloads 1-5 on one harness.
async fn run_backend<H: Harness>(mut h: H, p: &Params) -> (BackendReport, H) {
    let t = |s: u64| Duration::from_secs(s);
    let latency_32 = workloads::latency(&mut h, 32, p.lat32.0, p.lat32.1, t(5)).await;
    progress("latency 32 B", &latency_32);
    let latency_128k = workloads::latency(&mut h, LARGE, p.lat128k.0, p.lat128k.1, t(20)).await;
    progress("latency 128000 B", &latency_128k);
    let throughput =
        workloads::throughput(&mut h, 1024, p.throughput_run, p.throughput_drain).await;
    progress("throughput", &throughput);
    let mut fanout = Vec::new();
    for &n in &p.fanout_receivers {
        let budget = if p.quick { t(10) } else { t(60) };
        let f = workloads::fanout(&mut h, n, 32, p.fanout_samples, t(2), budget).await;
        progress(&format!("fan-out {n}"), &f);
        fanout.push(f);
    }
    let join =
        workloads::join_to_first(&mut h, p.join_samples, Duration::from_millis(1), t(20)).await;
    progress("join", &join);
    let bulk = workloads::bulk(
        &mut h,
        p.bulk_bytes,
        workloads::BULK_CHUNK,
        p.bulk_small_interval,
        p.bulk_idle_samples,
        t(10),
    )
    .await;
    progress("bulk", &bulk);
    (
        BackendReport {
            name: h.name(),
            latency_32,
            latency_128k,
            throughput,
            fanout,
            join,
            bulk,
            wall_s: 0.0,
        },
        h,
    )
}

/// Prints whether a workload gave a result.
pub fn progress<T: std::fmt::Debug>(what: &str, r: &Res<T>) {
    match r {
        Ok(_) => eprintln!("   {what}: ok"),
        Err(e) => eprintln!("   {what}: FAILED: {e}"),
    }
}

/// What the sender writes per fan-out payload, where it can be known.
fn fill_sender_bytes(r: &mut BackendReport) {
    for f in r.fanout.iter_mut().flatten() {
        let frame = 4 + f.size as u64;
        let (bytes, note) = match r.name.as_str() {
            "tcp-direct" => (
                Some(frame * f.receivers as u64),
                "exact: one frame per receiver connection".to_owned(),
            ),
            "tcp-relay" => (Some(frame), "exact: one frame to the relay".to_owned()),
            n if n.starts_with("xmpp") => {
                let fixture = Fixture::new(f.size);
                (
                    Some(fixture.stanza().len() as u64),
                    "serialised stanza (minidom), independent of the number of receivers"
                        .to_owned(),
                )
            }
            _ => (
                None,
                "n/a: iroh 0.35 counters need its `metrics` feature and the endpoints are \
                 private to the backend"
                    .to_owned(),
            ),
        };
        f.sender_bytes = bytes;
        f.sender_bytes_note = note;
    }
}
