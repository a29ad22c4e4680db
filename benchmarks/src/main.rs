//! `cargo run --release -p benchmarks -- --full` (or `--quick`): runs every
//! workload on every backend, prints the table, writes
//! `benchmarks/results/{latest,quick}.json` and, for `--full`, updates
//! `docs/benchmarks.md` and its chart.
//!
//! Options: `--quick` (few samples, a few seconds per backend; CI checks
//! that it runs, not the figures), `--full` (the default), `--only
//! NAME[,NAME…]` to run some backends or sections only (backend names,
//! `memory`, `wire`, `throttle`, `host-rtt`), `--no-docs` to leave `docs/`
//! alone.
//!
//! This file is the command line only; the run is `benchmarks::run`, the
//! layout is in the library's docs.

use std::time::Instant;

use benchmarks::params::Params;
use benchmarks::sys::{self, Machine};
use benchmarks::workloads::epoch;
use benchmarks::{memory, output, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        memory::child_main(&args[1..]);
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

    // The host-rtt section's Chromium comes from the package registry:
    // install it (when missing) while the network is still there. A
    // failure shows again in that section's row.
    if let Err(e) = test_browser::install() {
        eprintln!("benchmarks: {e}");
    }
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
    let mut report = rt.block_on(run::run(&params, only.as_deref(), machine, &args));
    report.wall_s = started.elapsed().as_secs_f64();
    report.machine.load_after = sys::loadavg();
    report.evaluate_targets();
    drop(rt);

    let table = report.markdown();
    println!("{table}");
    let docs = !quick && !no_docs && only.is_none();
    output::write_results(&report, &table, quick, docs);
}
