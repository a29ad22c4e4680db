//! `cargo run --release -p benchmarks -- --full` (or `--quick`): runs every
//! workload on every backend, prints the table, writes
//! `benchmarks/results/{latest,quick}.json` and, for `--full`, updates
//! `docs/benchmarks.md` and its chart.
//!
//! Options: `--quick` (few samples, a few seconds per backend; CI checks
//! that it runs, not the figures), `--full` (the default), `--only
//! NAME[,NAME…]` to run some backends or sections only (backend names,
//! `memory`, `wire`, `throttle`), `--no-docs` to leave `docs/` alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchmarks::floors::{Floor, FloorHarness};
use benchmarks::lib_xmpp::LibXmppHarness;
use benchmarks::memory::{self, Memory};
use benchmarks::report::{BackendReport, Report, Res, ThrottleReport};
use benchmarks::sys::{self, Machine};
use benchmarks::wire_cost::{self, Fixture, OpCost};
use benchmarks::workloads::{self, epoch};
use spec_tests::harness::Harness;
use xmpp_test_server::Options;

/// Sample counts and durations for one mode.
#[derive(Debug, Clone)]
struct Params {
    quick: bool,
    lat32: (usize, usize),
    lat128k: (usize, usize),
    throughput_run: Duration,
    throughput_drain: Duration,
    fanout_receivers: Vec<usize>,
    fanout_samples: usize,
    join_samples: usize,
    memory: (usize, usize, usize),
    wire_budget: Duration,
    callgrind: [(usize, u64, u64); 2],
    throttled_lat_samples: usize,
    throttled_run: Duration,
}

impl Params {
    fn full() -> Params {
        Params {
            quick: false,
            lat32: (200, 2000),
            lat128k: (20, 200),
            throughput_run: Duration::from_secs(5),
            throughput_drain: Duration::from_secs(5),
            fanout_receivers: vec![2, 8, 32],
            fanout_samples: 200,
            join_samples: 50,
            memory: (100, 100, 1000),
            wire_budget: Duration::from_secs(2),
            callgrind: [(32, 1_000, 11_000), (128_000, 5, 25)],
            throttled_lat_samples: 3,
            throttled_run: Duration::from_secs(10),
        }
    }

    fn quick() -> Params {
        Params {
            quick: true,
            lat32: (20, 100),
            lat128k: (2, 10),
            throughput_run: Duration::from_secs(1),
            throughput_drain: Duration::from_secs(2),
            fanout_receivers: vec![2, 8, 32],
            fanout_samples: 10,
            join_samples: 5,
            memory: (20, 20, 200),
            wire_budget: Duration::from_millis(200),
            callgrind: [(32, 100, 1_100), (128_000, 2, 6)],
            throttled_lat_samples: 1,
            throttled_run: Duration::from_secs(2),
        }
    }
}

/// Workload 8: (label, c2s rate limit, edit of the recommended Prosody
/// config as (from, to)).
type ThrottleConfig = (
    &'static str,
    Option<&'static str>,
    Option<(&'static str, &'static str)>,
);

/// The order backends run in, and the table's column order.
const BACKENDS: [&str; 5] = [
    "xmpp-prosody",
    "xmpp-ejabberd",
    "iroh-deltachat",
    "tcp-direct",
    "tcp-relay",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        memory_child(&args[1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let no_docs = args.iter().any(|a| a == "--no-docs");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect());
    let params = if quick {
        Params::quick()
    } else {
        Params::full()
    };

    // Iroh 0.35 probes the default gateway for port mapping; a network
    // namespace with only loopback keeps every backend, and every server
    // process we start, off the network. It also makes the loopback byte
    // counters ours alone. Must happen before any thread exists.
    iroh_backend::netns::isolate()
        .expect("cannot enter a loopback-only network namespace (needs root or user namespaces)");
    epoch();
    let machine = Machine::probe();
    eprintln!(
        "benchmarks: {} mode on {} × {} (load {})",
        if quick { "quick" } else { "full" },
        machine.nproc,
        machine.cpu,
        machine.load_before
    );

    // Two workers: one per core. Every backend runs on the same runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let started = Instant::now();
    let mut report = rt.block_on(run(&params, only.as_deref(), machine, &args));
    report.wall_s = started.elapsed().as_secs_f64();
    report.machine.load_after = sys::loadavg();
    report.evaluate_targets();
    drop(rt);

    let table = report.markdown();
    println!("{table}");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let results = manifest.join("results");
    let stem = if quick { "quick" } else { "latest" };
    std::fs::create_dir_all(&results).expect("cannot create benchmarks/results");
    let json = serde_json::to_string_pretty(&report).expect("the report serialises");
    write(&results.join(format!("{stem}.json")), &json);
    write(&results.join(format!("{stem}.md")), &table);
    match report.svg() {
        Ok(svg) => {
            write(&results.join(format!("{stem}.svg")), &svg);
            if !quick && !no_docs && only.is_none() {
                let docs = manifest.join("../docs");
                write(&docs.join("benchmarks.svg"), &svg);
                update_docs(&docs.join("benchmarks.md"), &report, &table);
            }
        }
        Err(e) => eprintln!("benchmarks: chart failed: {e}"),
    }
    eprintln!(
        "benchmarks: done in {:.0} s; wrote {}",
        report.wall_s,
        results.join(format!("{stem}.json")).display()
    );
}

fn write(path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        eprintln!("benchmarks: cannot write {}: {e}", path.display());
    }
}

/// Replaces what is between the result markers of docs/benchmarks.md.
fn update_docs(path: &Path, report: &Report, table: &str) {
    const START: &str = "<!-- results:start -->";
    const END: &str = "<!-- results:end -->";
    let Ok(doc) = std::fs::read_to_string(path) else {
        eprintln!("benchmarks: {} not found; not updated", path.display());
        return;
    };
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        eprintln!("benchmarks: no result markers in {}", path.display());
        return;
    };
    let m = &report.machine;
    let body = format!(
        "{START}\n\nRun: `{}` — {:.0} s wall time. Machine: {} × {}, {:.0} GiB, Linux {}; \
         load average {} before, {} after; Prosody {}, ejabberd {}; {}.\n\n{}\n\n\
         ![latency and fan-out](benchmarks.svg)\n\n",
        report.command,
        report.wall_s,
        m.nproc,
        m.cpu,
        m.memory_gib,
        m.kernel,
        m.load_before,
        m.load_after,
        m.prosody,
        m.ejabberd,
        m.rustc,
        table.trim_end()
    );
    let new = format!("{}{}{}", &doc[..a], body, &doc[b..]);
    write(path, &new);
}

fn selected(only: Option<&[String]>, name: &str) -> bool {
    only.is_none_or(|o| o.iter().any(|n| n == name))
}

async fn run(
    params: &Params,
    only: Option<&[String]>,
    machine: Machine,
    args: &[String],
) -> Report {
    let mut backends = Vec::new();
    for name in BACKENDS {
        if !selected(only, name) {
            continue;
        }
        eprintln!("== {name}");
        let t0 = Instant::now();
        let mut r = match name {
            "xmpp-prosody" => {
                let h = spec_backends::xmpp::XmppHarness::prosody();
                let (r, h) = run_backend(h, params).await;
                drop_off_runtime(h).await;
                r
            }
            "xmpp-ejabberd" => {
                let h = spec_backends::xmpp::XmppHarness::ejabberd();
                let (r, h) = run_backend(h, params).await;
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

    let memory: Res<Memory> = if selected(only, "memory") {
        eprintln!("== memory");
        run_memory_child(params).await
    } else {
        Err("not run".into())
    };

    let (wire, callgrind_note) = if selected(only, "wire") {
        eprintln!("== wire");
        run_wire(params).await
    } else {
        (Vec::new(), "not run".into())
    };

    let mut throttle = Vec::new();
    if selected(only, "throttle") {
        const NAGLE_OFF: &str = "network_settings = { nagle = false }";
        let configs: [ThrottleConfig; 4] = [
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
        for (label, rate, edit) in configs {
            eprintln!("== throttle: {label}");
            throttle.push(run_throttle(label, rate, edit, params).await);
        }
    }

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
        targets: Vec::new(),
        notes,
    }
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
    let latency_128k = workloads::latency(&mut h, 128_000, p.lat128k.0, p.lat128k.1, t(20)).await;
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
    (
        BackendReport {
            name: h.name(),
            latency_32,
            latency_128k,
            throughput,
            fanout,
            join,
            wall_s: 0.0,
        },
        h,
    )
}

fn progress<T: std::fmt::Debug>(what: &str, r: &Res<T>) {
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

/// Workload 6 in a fresh child process (see `memory`).
async fn run_memory_child(p: &Params) -> Res<Memory> {
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
fn memory_child(args: &[String]) {
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let result = rt.block_on(memory::measure(n(0, 100), n(1, 100), n(2, 1000)));
    match result {
        Ok(m) => println!("{}", serde_json::to_string(&m).expect("serialises")),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// Workload 7: wall-clock per op here, instructions under callgrind.
async fn run_wire(p: &Params) -> (Vec<OpCost>, String) {
    let budget = p.wire_budget;
    let callgrind = p.callgrind;
    let quick = p.quick;
    let r = tokio::task::spawn_blocking(move || {
        let mut costs = Vec::new();
        for size in [32usize, 128_000] {
            let f = Fixture::new(size);
            costs.push(wire_cost::time_op(size, "frame", budget, || f.frame_round_trip()));
            costs.push(wire_cost::time_op(size, "xml", budget, || f.xml_round_trip()));
        }
        let note = match callgrind_helper() {
            Err(e) => format!("callgrind: not measured ({e})"),
            Ok(helper) => {
                let mut notes = Vec::new();
                for (size, n1, n2) in callgrind {
                    match wire_cost::callgrind(&helper, size, n1, n2) {
                        Ok(i) => {
                            if let Some(c) = costs.iter_mut().find(|c| c.size == size && c.path == "frame") {
                                c.instructions = Some(i);
                            }
                        }
                        Err(e) if quick => notes.push(format!("callgrind skipped: {e}")),
                        Err(e) => notes.push(format!("callgrind failed: {e}")),
                    }
                }
                if notes.is_empty() {
                    format!(
                        "Instructions: `valgrind --tool=callgrind {} SIZE N`, (Ir(N2) − Ir(N1)) / (N2 − N1).",
                        helper.display()
                    )
                } else {
                    notes.join("; ")
                }
            }
        };
        (costs, note)
    })
    .await;
    r.unwrap_or_else(|e| (Vec::new(), format!("wire workload panicked: {e}")))
}

/// The `wire-callgrind` binary beside ours; built on demand when `cargo
/// run` built only the main binary.
fn callgrind_helper() -> Result<PathBuf, String> {
    if std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("valgrind is not installed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let helper = exe.with_file_name("wire-callgrind");
    if helper.exists() {
        return Ok(helper);
    }
    let cargo = std::env::var("CARGO").map_err(|_| {
        format!(
            "{} is missing (build it with `cargo build --release -p benchmarks`)",
            helper.display()
        )
    })?;
    let release = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--offline",
        "-p",
        "benchmarks",
        "--bin",
        "wire-callgrind",
    ]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() || !helper.exists() {
        return Err(format!(
            "building wire-callgrind failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(helper)
}

/// Workload 8 for one server configuration.
async fn run_throttle(
    label: &str,
    rate: Option<&str>,
    edit: Option<(&str, &str)>,
    p: &Params,
) -> ThrottleReport {
    let opts = Options {
        c2s_rate_limit: rate.map(str::to_owned),
        ..Options::prosody()
    };
    let mut h = LibXmppHarness::new(label, opts);
    if let Some((from, to)) = edit {
        h = h.with_config_edit(from, to);
    }
    let events = h.events.clone();
    let rss_start = sys::rss_kib().unwrap_or(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                max = max.max(sys::rss_kib().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            max
        })
    };
    let (warm, samples, timeout) = match rate {
        // One 128000-byte payload takes about 17 s at 10 kb/s.
        Some(_) => (0, p.throttled_lat_samples, Duration::from_secs(90)),
        None => (p.lat128k.0, p.lat128k.1, Duration::from_secs(20)),
    };
    // Fewer small-payload samples than workload 1: with Nagle on each
    // takes tens of milliseconds.
    let (w32, n32) = (p.lat32.0.min(20), p.lat32.1.min(200));
    let latency_32 = workloads::latency(&mut h, 32, w32, n32, Duration::from_secs(10)).await;
    progress("latency 32 B", &latency_32);
    let latency_128k = workloads::latency(&mut h, 128_000, warm, samples, timeout).await;
    progress("latency 128000 B", &latency_128k);
    let throughput = workloads::throughput(&mut h, 1024, p.throttled_run, p.throughput_drain).await;
    progress("throughput", &throughput);
    stop.store(true, std::sync::atomic::Ordering::Release);
    let rss_max = sampler.await.unwrap_or(0);
    let rss_end = sys::rss_kib().unwrap_or(0);
    h.shutdown().await;
    let events = events.lock().map(|e| e.clone()).unwrap_or_default();
    ThrottleReport {
        label: label.to_owned(),
        c2s_rate_limit: rate.map(str::to_owned),
        config_edit: edit.map(|(_, to)| to.to_owned()),
        latency_32,
        latency_128k,
        throughput,
        events,
        rss_start_kib: rss_start,
        rss_max_kib: rss_max,
        rss_end_kib: rss_end,
    }
}
