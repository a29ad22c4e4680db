//! Workload 1 (one-way latency, one payload in flight) on the XMPP floor
//! and the TCP relay only, without the rest of the benchmark: the process
//! to profile when asking where the floor's time goes.
//!
//! `floor-latency [mt|mtN|ct] [floor|relay|both] [SAMPLES] [SIZE]`
//! (default `mt both 3000 32`: a two-worker runtime as the benchmark's,
//! `ct` a current-thread one). Prints p50/min/p90 in µs and, for the
//! floor, how many echoes the clients dropped unread.
//!
//! How `docs/benchmarks.md` used it ("End to end"):
//!
//! * instructions per payload, all threads: `valgrind --tool=callgrind
//!   target/release/floor-latency mt floor N 32` for two N, the
//!   difference of the totals divided by the difference of N (the set-up
//!   cancels out); `callgrind_annotate --inclusive=yes` for the owners;
//! * CPU time, context switches and system calls per payload: `perf stat
//!   -e task-clock,context-switches,syscalls:sys_enter_futex,…` the same
//!   way;
//! * where the CPU goes: `perf record -e cpu-clock --call-graph dwarf`.

use std::time::Duration;

use benchmarks::floors::{Floor, FloorHarness};
use benchmarks::workloads;
use benchmarks::xmpp_floor::XmppFloorHarness;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let flavour = arg(0, "mt");
    let which = arg(1, "both");
    let samples: usize = arg(2, "3000").parse().expect("SAMPLES is a number");
    let size: usize = arg(3, "32").parse().expect("SIZE is a number");
    let warmup = if size > 1024 { 5 } else { 200 };
    let timeout = Duration::from_secs(10);
    workloads::epoch();
    let rt = match flavour.as_str() {
        "ct" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        mt => {
            let workers = mt.trim_start_matches("mt").parse().unwrap_or(2);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
        }
    }
    .expect("a tokio runtime");
    rt.block_on(async {
        if which == "both" || which == "floor" {
            let mut h = XmppFloorHarness::new();
            let l = workloads::latency(&mut h, size, warmup, samples, timeout)
                .await
                .expect("latency on the floor");
            println!(
                "xmpp-floor {flavour} {size} B: p50 {:.1} µs, min {:.1}, p90 {:.1}; echoes skipped {}",
                l.us.p50,
                l.us.min,
                l.us.p90,
                h.echoes_skipped()
            );
            h.shutdown().await;
        }
        if which == "both" || which == "relay" {
            let mut h = FloorHarness::new(Floor::Relay);
            let l = workloads::latency(&mut h, size, warmup, samples, timeout)
                .await
                .expect("latency on the relay");
            println!(
                "tcp-relay {flavour} {size} B: p50 {:.1} µs, min {:.1}, p90 {:.1}",
                l.us.p50, l.us.min, l.us.p90
            );
        }
    });
}
