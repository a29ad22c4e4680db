//! The benchmark: the same realtime workloads on every backend in one run,
//! on this machine, reported as absolute figures and ratios.
//!
//! Run it with `cargo run --release -p benchmarks -- --full` (or
//! `--quick`); see `docs/benchmarks.md`.
//!
//! # Layout
//!
//! * `src/main.rs`: the command line only.
//! * [`params`]: sample counts and durations per mode.
//! * [`run`]: one run: workloads 1-5 on each backend, then the sections
//!   below, into one [`Report`](report::Report).
//! * [`workloads`]: workloads 1-5 (latency, throughput, fan-out, join to
//!   first delivery), generic over the conformance suite's
//!   [`Harness`](spec_tests::harness::Harness) trait so every backend runs
//!   the same code. The XMPP backends are the suite's own
//!   (`spec_backends::xmpp::XmppHarness`), the Iroh one is `iroh-backend`'s.
//! * [`floors`]: two harnesses written for the benchmark: one TCP hop and
//!   a minimal TCP forwarder, the best a peer-to-peer and a server-relayed
//!   design could reach here.
//! * [`xmpp_floor`]: the real client stack against a minimal in-process
//!   XMPP server written for the benchmark (`xmpp-floor`): what the
//!   servers add, and what our client stack costs.
//! * [`memory`]: workload 6 (resident memory per connection and channel),
//!   in a child process.
//! * [`wire_cost`]: workload 7 (encode + decode alone) and its one
//!   [`Fixture`](wire_cost::Fixture), which `benches/wire.rs` (divan) and
//!   the `wire-callgrind` binary measure too.
//! * [`throttle`]: workload 8 (the library on a throttled or differently
//!   configured Prosody).
//! * [`host_rtt`]: page to page through the webxdc host (headless
//!   Chromium), beside the library's own round trip on the same server.
//! * [`report`]: the results, the targets, the tables and the chart.
//! * [`output`]: where the results are written (`results/`, `docs/`).
//! * [`stats`], [`sys`]: percentiles; machine facts, RSS, load.

use std::time::Duration;

pub mod floors;
pub mod host_rtt;
pub mod memory;
pub mod output;
pub mod params;
pub mod report;
pub mod run;
pub mod stats;
pub mod sys;
pub mod throttle;
pub mod wire_cost;
pub mod workloads;
pub mod xmpp_floor;

/// The large payload of workloads 2, 7 and 8: the largest the contract
/// allows.
pub const LARGE: usize = spec_tests::cases::MAX_PAYLOAD;

/// Hang guard for the library's logins on a loaded (or throttled) server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
