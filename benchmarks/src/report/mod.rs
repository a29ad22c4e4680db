//! The results: what was measured ([`Report`], this file), and what is
//! made of it, one file each:
//!
//! * `targets.rs`: [`Report::evaluate_targets`], the targets met or missed;
//! * `markdown.rs`: [`Report::markdown`], the tables, one function per
//!   section;
//! * `chart.rs`: [`Report::svg`], the chart;
//! * `format.rs`: how a duration, a size or a failed workload reads in a
//!   table cell.
//!
//! The round trip through the host is [`crate::host_rtt::HostRtt`], one
//! per server, in [`Report::host_rtt`].

mod chart;
mod format;
mod markdown;
mod targets;

use serde::Serialize;

pub use format::dur;

use crate::host_rtt::HostRtt;
use crate::memory::Memory;
use crate::sys::Machine;
use crate::throttle::{EventCounts, Role};
use crate::wire_cost::OpCost;
use crate::workloads::{Bulk, Fanout, JoinFirst, Latency, Throughput};

/// A workload's result, or why it has none.
pub type Res<T> = Result<T, String>;

/// Workloads 1-5 on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    pub name: String,
    pub latency_32: Res<Latency>,
    pub latency_128k: Res<Latency>,
    pub throughput: Res<Throughput>,
    pub fanout: Vec<Res<Fanout>>,
    pub join: Res<JoinFirst>,
    /// Workload 10: a large transfer in chunks, small payloads meanwhile.
    pub bulk: Res<Bulk>,
    /// Wall time of all its workloads, set-up included (s).
    pub wall_s: f64,
}

/// Workload 8 for one server configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleReport {
    pub label: String,
    /// `prosody` or `ejabberd`.
    pub server: String,
    pub role: Role,
    pub c2s_rate_limit: Option<String>,
    /// The settings changed against the generated (recommended)
    /// configuration.
    pub config_edits: Vec<String>,
    pub latency_32: Res<Latency>,
    /// Fan-out to 32 receivers, 32 B.
    pub fanout_32: Res<Fanout>,
    pub latency_128k: Res<Latency>,
    pub throughput: Res<Throughput>,
    /// What the clients reported through `Client::events()`.
    pub events: EventCounts,
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    pub rss_end_kib: u64,
    /// The machine's load average (1, 5, 15 min) when the row started.
    pub load: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub backend: String,
    pub measured: String,
    /// measured / limit, oriented so that <= 1 meets the target.
    pub ratio: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub command: String,
    pub machine: Machine,
    pub unix_time: u64,
    pub wall_s: f64,
    pub backends: Vec<BackendReport>,
    pub wire: Vec<OpCost>,
    pub callgrind_note: String,
    pub memory: Res<Memory>,
    pub throttle: Vec<ThrottleReport>,
    /// Page to page through the host, beside the library, per server.
    pub host_rtt: Vec<HostRtt>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn backend(&self, name: &str) -> Option<&BackendReport> {
        self.backends.iter().find(|b| b.name == name)
    }

    pub(crate) fn p50_32(&self, name: &str) -> Option<f64> {
        self.backend(name)?
            .latency_32
            .as_ref()
            .ok()
            .filter(|l| l.us.n > 0)
            .map(|l| l.us.p50)
    }
}
