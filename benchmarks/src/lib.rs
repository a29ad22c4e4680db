//! The benchmark: the same realtime workloads on every backend in one run,
//! on this machine, reported as absolute figures and ratios.
//!
//! * [`workloads`]: workloads 1-5 (latency, throughput, fan-out, join to
//!   first delivery), generic over the conformance suite's
//!   [`Harness`](spec_tests::harness::Harness) trait so every backend runs
//!   the same code.
//! * [`floors`]: two harnesses written for the benchmark: one TCP hop and
//!   a minimal TCP forwarder, the best a peer-to-peer and a server-relayed
//!   design could reach here.
//! * [`lib_xmpp`]: the library's client against a server started with
//!   chosen options (workload 8, throttled server).
//! * [`memory`]: workload 6 (resident memory per connection and channel).
//! * [`wire_cost`]: workload 7 (encode + decode alone, callgrind).
//! * [`report`]: the table, the targets, the JSON and the chart.
//!
//! Run it with `cargo run --release -p benchmarks -- --full` (or
//! `--quick`); see `docs/benchmarks.md`.

pub mod floors;
pub mod lib_xmpp;
pub mod memory;
pub mod report;
pub mod stats;
pub mod sys;
pub mod wire_cost;
pub mod workloads;
