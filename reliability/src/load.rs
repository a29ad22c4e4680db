//! Part 2, load held: many peers in one room, each sending at a fixed rate
//! for a while, on Prosody and on ejabberd.
//!
//! Every peer is a library [`Client`] of its own (all in this process), in
//! one room, with a channel on the same app instance. Each peer sends
//! payloads that carry (sender index, sequence number, send time) and
//! receives everyone else's; every receiver checks that it got every
//! payload of every other sender, in order per sender, none twice, with
//! the exact bytes. Losses the library reported ([`Delivery::Lagged`]) are
//! counted apart from silent ones.
//!
//! # How a run goes
//!
//! 1. A fresh server, `peers` clients, one room, one channel each.
//! 2. Connectivity by causality: [`setup::barrier`] from every peer to all
//!    the others, so every receiver has heard every sender before the load
//!    starts (no sleeps).
//! 3. Every sender ticks at `rate` per second for `duration`. The senders'
//!    phases are spread over one period so that the room does not see all
//!    of them at the same instant each tick. A tick missed because
//!    `send().await` waited (the connection's queue was full: the server
//!    does not keep up) is *skipped* ([`MissedTickBehavior::Skip`]), not
//!    made up in a burst: the achieved rate then drops below the offered
//!    one, which is what we report. Bursting to catch up would turn a load
//!    test into a flood test (part 3).
//! 4. Drain: the run ends when every receiver has every sender's last
//!    sequence number, or when nothing has arrived for [`DRAIN_GUARD`]
//!    after the last sender stopped (at most [`DRAIN_CAP`] in all): an
//!    overloaded server's backlog is waited for while it still arrives,
//!    and what is missing at the end counts as lost.
//!
//! # What "held" means
//!
//! * Nothing lost, duplicated, out of order, corrupted or reported lost
//!   (`Lagged`), no send failed and no connection dropped.
//! * Every sender achieved at least [`ACHIEVED_SHARE`] of the offered
//!   rate.
//! * This process's memory is flat (see [`Memory::flat`]): from a sixth of
//!   the run (second 10 of 60; at least one sending period) to the end, neither the resident size at
//!   the end nor its peak in between exceeds the size at that point by
//!   more than [`MEMORY_TOLERANCE_KIB`] or [`MEMORY_TOLERANCE_SHARE`],
//!   whichever is larger. A leak of anything per payload (50,000 payloads
//!   a second are received at the issue's rate) grows by far more than
//!   that within 50 s; the tolerance absorbs the allocator's and the
//!   queues' ups and downs, which are bounded.
//!
//! A rate "the server can carry" is stricter: held, and the 99th
//! percentile latency (send to receive, one clock: all peers are in this
//! process) at most [`CARRY_LATENCY_US`], so that no backlog builds up.
//!
//! At full scale the issue's case runs first (32 peers × 50/s × 60 s of
//! 1 KiB). If it does not hold on a server, short probes step down a
//! ladder of rates from the rate the server actually delivered, and the
//! highest rate whose probe was carried runs again at full length. The
//! 128000-byte case finds its rate the same way, from the top of its own
//! ladder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use webxdc_realtime_xmpp::{Channel, Client, Delivery, SendError};
use xmpp_test_server::{ServerKind, TestServer};

use crate::report::{cpu_seconds_of, memory_kib_of, own_memory_kib};
use crate::{setup, Part, Row, Scale};

/// How long receivers wait for the next payload once every sender has
/// stopped: a hang guard, a healthy run drains in milliseconds. It counts
/// from the last arrival, so that a server's backlog (still delivering) is
/// told from a loss (nothing more comes), up to [`DRAIN_CAP`].
pub const DRAIN_GUARD: Duration = Duration::from_secs(20);

/// The longest a drain may take in all, however steadily a backlog still
/// arrives.
pub const DRAIN_CAP: Duration = Duration::from_secs(240);

/// The drain's hang guard in a probe: a rate that is carried drains in
/// well under a second, and a probe that needs longer has failed anyway.
const PROBE_DRAIN_GUARD: Duration = Duration::from_secs(5);

/// The share of the offered rate a sender must achieve for the run to
/// hold: a little slack for the scheduler on a busy machine (a tick is
/// only skipped when the sender is more than a whole period late).
pub const ACHIEVED_SHARE: f64 = 0.95;

/// Memory growth always tolerated (KiB): see the module docs.
pub const MEMORY_TOLERANCE_KIB: u64 = 16 * 1024;

/// Memory growth tolerated as a share of the resident size at the start of
/// the window.
pub const MEMORY_TOLERANCE_SHARE: f64 = 0.10;

/// Highest 99th-percentile latency (µs) of a run that the server
/// "carries": the server keeps up instead of queueing.
pub const CARRY_LATENCY_US: u64 = 1_000_000;

/// How long a probe of the rate ladder runs at full scale, at least (and
/// at least [`PROBE_PERIODS`] sending periods).
const PROBE: Duration = Duration::from_secs(10);

/// Sending periods a probe lasts at least, so that a slow rate still sends
/// a few payloads per peer.
const PROBE_PERIODS: u32 = 3;

/// Rates per peer (payloads per second) that probes step down, highest
/// first.
const LADDER: [f64; 20] = [
    50.0, 35.0, 25.0, 18.0, 12.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.35, 0.25, 0.18,
    0.12, 0.08, 0.05,
];

/// The top of the ladder for 128000-byte payloads.
const BIG_LADDER_TOP: f64 = 4.0;

/// Payload prefix: tells load payloads from the barrier's markers (which
/// start with a NUL byte).
const TAG: u8 = b'L';

/// Header: tag, sender (u16), sequence number (u32), send time (µs since
/// the run's start, u64).
const HEADER: usize = 1 + 2 + 4 + 8;

/// The largest payload the webxdc API allows.
pub const BIG: usize = 128_000;

/// One load case: how many peers, how fast, how long, how big.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Peers in the room; each sends and receives.
    pub peers: usize,
    /// Payloads per second each peer offers.
    pub rate: f64,
    /// How long the senders send.
    pub duration: Duration,
    /// Bytes per payload (at least the 15-byte header).
    pub size: usize,
    /// How long receivers wait for the last payloads once every sender
    /// has stopped (a hang guard).
    pub drain_guard: Duration,
    /// The longest the whole drain may take (see [`DRAIN_CAP`]).
    pub drain_cap: Duration,
}

impl Load {
    /// "32 peers × 50/s × 60 s, 1 KiB".
    pub fn describe(&self) -> String {
        let size = if self.size == 1024 {
            "1 KiB".to_owned()
        } else {
            format!("{} B", self.size)
        };
        format!(
            "{} peers × {}/s × {} s, {size}",
            self.peers,
            rate(self.rate),
            self.duration.as_secs()
        )
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }
}

/// A rate as written in the table: no trailing zeros.
fn rate(r: f64) -> String {
    let s = format!("{r:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Runs this part at `scale`.
pub async fn run(scale: Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    for kind in [ServerKind::Prosody, ServerKind::Ejabberd] {
        match scale {
            Scale::Quick => {
                let small = Load {
                    peers: 4,
                    rate: 10.0,
                    duration: Duration::from_secs(5),
                    size: 1024,
                    drain_guard: DRAIN_GUARD,
                    drain_cap: DRAIN_CAP,
                };
                rows.push(measure(kind, small).await.row(kind, &small, None));
                let big = Load {
                    peers: 3,
                    rate: 2.0,
                    duration: Duration::from_secs(3),
                    size: BIG,
                    drain_guard: DRAIN_GUARD,
                    drain_cap: DRAIN_CAP,
                };
                rows.push(measure(kind, big).await.row(kind, &big, None));
            }
            Scale::Full => rows.extend(full(kind).await),
        }
    }
    rows
}

/// The full scale on one server: the issue's case, the highest 1 KiB rate
/// that holds if the issue's does not, and the 128000-byte case at a rate
/// found by probing.
async fn full(kind: ServerKind) -> Vec<Row> {
    let issue = Load {
        peers: 32,
        rate: 50.0,
        duration: Duration::from_secs(60),
        size: 1024,
        drain_guard: DRAIN_GUARD,
        drain_cap: DRAIN_CAP,
    };
    let mut rows = Vec::new();
    let outcome = measure(kind, issue).await;
    let held = outcome.held();
    rows.push(outcome.row(kind, &issue, None));
    if !held {
        // Start where the server's delivered rate says it might carry.
        let start = (1..LADDER.len())
            .find(|&i| LADDER[i] <= 2.0 * outcome.carried_rate())
            .unwrap_or(LADDER.len() - 1);
        rows.push(find_rate(kind, issue, 1, start).await);
    }
    let big = Load { size: BIG, ..issue };
    let start = LADDER
        .iter()
        .position(|&r| r <= BIG_LADDER_TOP)
        .unwrap_or(0);
    rows.push(find_rate(kind, big, start, start).await);
    rows
}

/// Finds the highest rung of the ladder, from index `top` down (starting
/// the probes at rung `first`), at which `base` holds, and runs it at full length. One row: that full run, with
/// the probes that led to it.
///
/// Short probes go down (jumping to twice the rate the server did deliver
/// when one is not carried), climb back up one rung at a time once one is
/// carried (a jump may overshoot), and the highest carried rung runs at
/// full length; if that run does not hold, the search goes on below it.
async fn find_rate(kind: ServerKind, base: Load, top: usize, first: usize) -> Row {
    let mut notes: Vec<String> = Vec::new();
    // Per rung: whether its probe was carried (None: not probed).
    let mut known: Vec<Option<bool>> = vec![None; LADDER.len()];
    let mut last: Option<(Load, Outcome)> = None;
    let mut i = first;
    let mut full_runs = 0;
    'search: while i < LADDER.len() {
        // Down until a probe is carried.
        loop {
            let (carried, delivered) = probe(kind, base, i, &mut notes).await;
            known[i] = Some(carried);
            if carried {
                break;
            }
            // An overloaded server delivers less than it could carry
            // without a backlog (Prosody's throughput falls as its write
            // buffers grow): twice what it delivered, a rung lower at least.
            i = (i + 1..LADDER.len())
                .find(|&k| LADDER[k] <= 2.0 * delivered)
                .unwrap_or(LADDER.len())
                .max(i + 1);
            if i >= LADDER.len() {
                break 'search;
            }
        }
        // Up while the rung above is carried too.
        while i > top && known[i - 1].is_none() {
            let (carried, _) = probe(kind, base, i - 1, &mut notes).await;
            known[i - 1] = Some(carried);
            if !carried {
                break;
            }
            i -= 1;
        }
        let load = Load {
            rate: LADDER[i],
            ..base
        };
        let outcome = measure(kind, load).await;
        let held = outcome.held();
        notes.push(format!(
            "full run at {}/s {}",
            rate(load.rate),
            if held { "held" } else { "did not hold" }
        ));
        last = Some((load, outcome));
        full_runs += 1;
        // Two full runs are enough to say where the limit is.
        if held || full_runs == 2 {
            break;
        }
        i += 1;
    }
    let how = format!(
        "rate found by probes of {} s or {PROBE_PERIODS} periods: {}",
        PROBE.as_secs(),
        notes.join(", ")
    );
    match last {
        Some((load, outcome)) => outcome.row(kind, &load, Some(&how)),
        None => Row::new(
            Part::Load,
            format!(
                "{}: {}, no rate carried",
                setup::name(kind),
                base.describe()
            ),
            how,
            false,
        ),
    }
}

/// A short run of `base` at the ladder's rung `i`: whether it was carried,
/// and the rate per peer the server did deliver.
async fn probe(kind: ServerKind, base: Load, i: usize, notes: &mut Vec<String>) -> (bool, f64) {
    let period = Duration::from_secs_f64(1.0 / LADDER[i]);
    let load = Load {
        rate: LADDER[i],
        duration: PROBE.max(period * PROBE_PERIODS),
        drain_guard: PROBE_DRAIN_GUARD,
        // A probe that needs a long drain has failed anyway.
        drain_cap: PROBE_DRAIN_GUARD,
        ..base
    };
    let outcome = measure(kind, load).await;
    let carried = outcome.carried();
    notes.push(format!(
        "{}/s {}",
        rate(load.rate),
        if carried {
            "carried".to_owned()
        } else {
            format!("not carried ({})", outcome.why_not())
        }
    ));
    (carried, outcome.carried_rate())
}

/// Latencies in a fixed histogram (so that recording them allocates
/// nothing during the run): 1-ms buckets up to 2 s, 100-ms buckets up to
/// 62 s, then one overflow bucket.
#[derive(Debug, Clone)]
struct Latency {
    buckets: Vec<u64>,
    max_us: u64,
}

const FINE_BUCKETS: usize = 2000;
const COARSE_BUCKETS: usize = 600;

impl Latency {
    fn new() -> Latency {
        Latency {
            buckets: vec![0; FINE_BUCKETS + COARSE_BUCKETS + 1],
            max_us: 0,
        }
    }

    fn record(&mut self, us: u64) {
        self.max_us = self.max_us.max(us);
        let ms = (us / 1000) as usize;
        let b = if ms < FINE_BUCKETS {
            ms
        } else {
            (FINE_BUCKETS + (ms - FINE_BUCKETS) / 100).min(FINE_BUCKETS + COARSE_BUCKETS)
        };
        self.buckets[b] += 1;
    }

    fn merge(&mut self, other: &Latency) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The upper edge of the bucket holding quantile `q`, in µs.
    fn quantile_us(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                let upper_ms = if b < FINE_BUCKETS {
                    b as u64 + 1
                } else {
                    (FINE_BUCKETS + (b - FINE_BUCKETS + 1) * 100) as u64
                };
                return (upper_ms * 1000).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// What one receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    /// Per sender: which sequence numbers arrived (a bitmap, allocated
    /// before the run).
    got: Vec<Vec<u64>>,
    /// Per sender: the highest sequence number so far.
    highest: Vec<Option<u32>>,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    corrupt: u64,
    /// Our own payloads reflected back (the library filters them).
    echoed: u64,
    lagged: u64,
    connection_events: u64,
    other: u64,
    latency: Latency,
    /// When the last load payload arrived.
    last_arrival: Option<Instant>,
}

impl Seen {
    fn new(peers: usize, most: u32) -> Seen {
        let words = (most as usize).div_ceil(64);
        Seen {
            got: vec![vec![0; words]; peers],
            highest: vec![None; peers],
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            corrupt: 0,
            echoed: 0,
            lagged: 0,
            connection_events: 0,
            other: 0,
            latency: Latency::new(),
            last_arrival: None,
        }
    }

    fn take(&mut self, me: usize, data: &[u8], size: usize, epoch: Instant) {
        let Some((sender, seq, sent_us)) = parse(data) else {
            // A barrier marker still in flight would start with NUL; load
            // payloads with a bad header are corrupt.
            if data.first() == Some(&TAG) {
                self.corrupt += 1;
            } else {
                self.other += 1;
            }
            return;
        };
        if sender == me {
            self.echoed += 1;
            return;
        }
        if sender >= self.got.len() || data.len() != size || !body_ok(data, sender, seq) {
            self.corrupt += 1;
            return;
        }
        let now = Instant::now();
        self.last_arrival = Some(now);
        let now_us = now.duration_since(epoch).as_micros() as u64;
        self.latency.record(now_us.saturating_sub(sent_us));
        let (word, bit) = (seq as usize / 64, seq % 64);
        let Some(w) = self.got[sender].get_mut(word) else {
            self.corrupt += 1;
            return;
        };
        if *w & (1 << bit) != 0 {
            self.duplicated += 1;
            return;
        }
        *w |= 1 << bit;
        self.received += 1;
        match self.highest[sender] {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest[sender] = Some(seq),
        }
    }

    /// Whether every other sender's last payload (of `sent[j]`) is here.
    fn complete(&self, me: usize, sent: &[u32]) -> bool {
        sent.iter().enumerate().all(|(j, &n)| {
            j == me
                || n == 0
                || self.got[j]
                    .get((n - 1) as usize / 64)
                    .is_some_and(|w| w & (1 << ((n - 1) % 64)) != 0)
        })
    }

    fn distinct_from(&self, j: usize) -> u64 {
        self.got[j].iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

fn header(sender: usize, seq: u32, sent_us: u64, buf: &mut [u8]) {
    buf[0] = TAG;
    buf[1..3].copy_from_slice(&(sender as u16).to_be_bytes());
    buf[3..7].copy_from_slice(&seq.to_be_bytes());
    buf[7..15].copy_from_slice(&sent_us.to_be_bytes());
}

fn parse(data: &[u8]) -> Option<(usize, u32, u64)> {
    if data.len() < HEADER || data[0] != TAG {
        return None;
    }
    let sender = u16::from_be_bytes(data[1..3].try_into().ok()?) as usize;
    let seq = u32::from_be_bytes(data[3..7].try_into().ok()?);
    let sent = u64::from_be_bytes(data[7..15].try_into().ok()?);
    Some((sender, seq, sent))
}

/// The body's bytes depend on sender and sequence number, so that a
/// payload mixed up with another or damaged on the way is caught.
fn body_byte(sender: usize, seq: u32, k: usize) -> u8 {
    (k as u32)
        .wrapping_add(seq.wrapping_mul(13))
        .wrapping_add(sender as u32 * 101) as u8
}

fn fill_body(sender: usize, seq: u32, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate().skip(HEADER) {
        *b = body_byte(sender, seq, k);
    }
}

fn body_ok(data: &[u8], sender: usize, seq: u32) -> bool {
    data.iter()
        .enumerate()
        .skip(HEADER)
        .all(|(k, &b)| b == body_byte(sender, seq, k))
}

/// What a sender did.
#[derive(Debug, Clone, Default)]
struct Sent {
    /// Ticks the offered rate has for this sender within the run.
    offered: u32,
    sent: u32,
    failed: u64,
    first_error: Option<String>,
}

/// Resident sizes of this process, one a second from the start.
#[derive(Debug, Clone, Default)]
struct Memory {
    /// (seconds since start, KiB).
    samples: Vec<(u64, u64)>,
}

impl Memory {
    /// (at the start of the window, peak in the window, at the end).
    fn window(&self, from_s: u64) -> Option<(u64, u64, u64)> {
        let inside: Vec<u64> = self
            .samples
            .iter()
            .filter(|(t, _)| *t >= from_s)
            .map(|(_, k)| *k)
            .collect();
        Some((*inside.first()?, *inside.iter().max()?, *inside.last()?))
    }

    fn tolerance(at: u64) -> u64 {
        MEMORY_TOLERANCE_KIB.max((at as f64 * MEMORY_TOLERANCE_SHARE) as u64)
    }

    /// Flat: neither the end nor the peak exceeds the window's start by
    /// more than the tolerance.
    fn flat(&self, from_s: u64) -> bool {
        match self.window(from_s) {
            Some((at, peak, end)) => {
                let tol = Memory::tolerance(at);
                peak <= at + tol && end <= at + tol
            }
            None => false,
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
struct Outcome {
    load: Load,
    /// Setup failure: the run did not take place.
    failed: Option<String>,
    sent: Vec<Sent>,
    seen: Vec<Seen>,
    /// How long the senders ran.
    sending: Duration,
    /// From the last sender's stop to the last receiver's completion (or
    /// the hang guard).
    drain: Duration,
    /// From the start to the last payload received.
    active: Duration,
    memory: Memory,
    /// This process's CPU seconds during the run.
    own_cpu: Option<f64>,
    server_cpu: Option<f64>,
    /// Server resident size at start, at end, and its peak (KiB).
    server_memory: (u64, u64, u64),
    server_process: String,
}

impl Outcome {
    fn failed(load: Load, why: String) -> Outcome {
        Outcome {
            load,
            failed: Some(why),
            sent: Vec::new(),
            seen: Vec::new(),
            sending: Duration::ZERO,
            drain: Duration::ZERO,
            active: Duration::ZERO,
            memory: Memory::default(),
            own_cpu: None,
            server_cpu: None,
            server_memory: (0, 0, 0),
            server_process: String::new(),
        }
    }

    fn total_sent(&self) -> u64 {
        self.sent.iter().map(|s| u64::from(s.sent)).sum()
    }

    /// Deliveries due: every payload to every peer but its sender.
    fn expected(&self) -> u64 {
        self.total_sent() * (self.load.peers as u64 - 1)
    }

    fn received(&self) -> u64 {
        self.seen.iter().map(|s| s.received).sum()
    }

    fn lost(&self) -> u64 {
        let mut lost = 0;
        for (i, s) in self.seen.iter().enumerate() {
            for (j, sent) in self.sent.iter().enumerate() {
                if i != j {
                    lost += u64::from(sent.sent).saturating_sub(s.distinct_from(j));
                }
            }
        }
        lost
    }

    fn sum(&self, f: impl Fn(&Seen) -> u64) -> u64 {
        self.seen.iter().map(f).sum()
    }

    fn send_failures(&self) -> u64 {
        self.sent.iter().map(|s| s.failed).sum()
    }

    /// The lowest rate a sender achieved, per second.
    /// The lowest share of its offered ticks a sender sent, as a rate.
    fn min_achieved(&self) -> f64 {
        self.sent
            .iter()
            .map(|s| self.load.rate * f64::from(s.sent) / f64::from(s.offered.max(1)))
            .fold(f64::INFINITY, f64::min)
    }

    fn mean_achieved(&self) -> f64 {
        let secs = self.load.duration.as_secs_f64();
        self.total_sent() as f64 / secs / self.load.peers as f64
    }

    fn delivered_per_second(&self) -> f64 {
        self.received() as f64 / self.active.as_secs_f64().max(f64::EPSILON)
    }

    /// The rate per peer that the deliveries amount to: what the server
    /// did carry.
    fn carried_rate(&self) -> f64 {
        let fan_out = (self.load.peers - 1).max(1) as f64;
        self.delivered_per_second() / fan_out / self.load.peers as f64
    }

    fn latency(&self) -> Latency {
        let mut all = Latency::new();
        for s in &self.seen {
            all.merge(&s.latency);
        }
        all
    }

    /// Where the memory window starts: a sixth of the run (second 10 of
    /// 60), but not before one period has passed, when every sender has
    /// sent once and the buffers on the way have been through their first
    /// fill (a slow rate of large payloads takes a while to get there).
    fn memory_window_start(&self) -> u64 {
        let period = self.load.period().as_secs_f64().ceil() as u64;
        (self.load.duration.as_secs() / 6)
            .max(period)
            .clamp(1, self.load.duration.as_secs().saturating_sub(1).max(1))
    }

    fn achieved_enough(&self) -> bool {
        // Counts, not rates: at a slow rate a sender whose phase is late
        // has one tick fewer than the others.
        !self.sent.is_empty()
            && self
                .sent
                .iter()
                .all(|s| f64::from(s.sent) >= ACHIEVED_SHARE * f64::from(s.offered))
    }

    fn complete(&self) -> bool {
        self.failed.is_none()
            && self.lost() == 0
            && self.sum(|s| s.duplicated) == 0
            && self.sum(|s| s.out_of_order) == 0
            && self.sum(|s| s.corrupt) == 0
            && self.sum(|s| s.echoed) == 0
            && self.sum(|s| s.lagged) == 0
            && self.sum(|s| s.connection_events) == 0
            && self.send_failures() == 0
            && self.received() == self.expected()
    }

    fn held(&self) -> bool {
        self.complete() && self.achieved_enough() && self.memory.flat(self.memory_window_start())
    }

    fn carried(&self) -> bool {
        self.held() && self.latency().quantile_us(0.99) <= CARRY_LATENCY_US
    }

    /// The first reason the run was not carried, for the probe list.
    fn why_not(&self) -> String {
        if let Some(f) = &self.failed {
            return f.clone();
        }
        if !self.complete() {
            return format!(
                "lost {}, lagged {}, send failures {}",
                self.lost(),
                self.sum(|s| s.lagged),
                self.send_failures()
            );
        }
        if !self.achieved_enough() {
            return format!("achieved {}/s", rate(self.min_achieved()));
        }
        if !self.memory.flat(self.memory_window_start()) {
            return "memory grew".to_owned();
        }
        format!("p99 latency {} ms", self.latency().quantile_us(0.99) / 1000)
    }

    fn row(&self, kind: ServerKind, load: &Load, how: Option<&str>) -> Row {
        let case = format!("{}: {}", setup::name(kind), load.describe());
        if let Some(why) = &self.failed {
            return Row::new(Part::Load, case, format!("run failed: {why}"), false);
        }
        let wall = (self.sending + self.drain).as_secs_f64().max(f64::EPSILON);
        let lat = self.latency();
        let cpu = |c: Option<f64>| match c {
            Some(c) => format!("{:.0} %", 100.0 * c / wall),
            None => "?".to_owned(),
        };
        let mut figures = format!(
            "offered {}/s per peer, achieved {}/s (slowest {}/s); sent {}, delivered {} of {} \
             ({:.0}/s); missing at the drain's end {} (reported by Lagged {}, unreported {}), duplicated {}, out of order {}, \
             corrupt {}, echoed {}, send failures {}, connection events {}; latency p50 {} ms, p99 {} ms, \
             max {} ms; drain {:.2} s; CPU over {:.0} s: {} {}, ours {}",
            rate(load.rate),
            rate(self.mean_achieved()),
            rate(self.min_achieved()),
            self.total_sent(),
            self.received(),
            self.expected(),
            self.delivered_per_second(),
            self.lost(),
            self.sum(|s| s.lagged),
            self.lost().saturating_sub(self.sum(|s| s.lagged)),
            self.sum(|s| s.duplicated),
            self.sum(|s| s.out_of_order),
            self.sum(|s| s.corrupt),
            self.sum(|s| s.echoed),
            self.send_failures(),
            self.sum(|s| s.connection_events),
            lat.quantile_us(0.5) / 1000,
            lat.quantile_us(0.99) / 1000,
            lat.max_us / 1000,
            self.drain.as_secs_f64(),
            wall,
            self.server_process,
            cpu(self.server_cpu),
            cpu(self.own_cpu),
        );
        if let Some(e) = self.sent.iter().find_map(|s| s.first_error.as_deref()) {
            figures.push_str(&format!("; first send error: {e}"));
        }
        if let Some(how) = how {
            figures.push_str(&format!("; {how}"));
        }
        let from = self.memory_window_start();
        let ours = match self.memory.window(from) {
            Some((at, peak, end)) => format!(
                "ours: {} MiB at {from} s, peak {} MiB, {} MiB at {} s (tolerance {} MiB)",
                mib(at),
                mib(peak),
                mib(end),
                self.memory.samples.last().map_or(0, |s| s.0),
                mib(Memory::tolerance(at)),
            ),
            None => "ours: not sampled".to_owned(),
        };
        let (s0, s1, speak) = self.server_memory;
        Row::new(Part::Load, case, figures, self.held()).with_memory(format!(
            "{ours}; server: {} → {} MiB (peak {} MiB)",
            mib(s0),
            mib(s1),
            mib(speak)
        ))
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The process that does the server's work: the given pid, or (if that is
/// a wrapper, as a shell script that starts the Erlang VM may be) its
/// descendant that runs the VM or Lua.
fn server_process(pid: u32) -> (String, String) {
    let comm = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let works = |c: &str| c.starts_with("beam") || c.starts_with("lua") || c == "prosody";
    let mut todo = vec![pid.to_string()];
    while let Some(p) = todo.pop() {
        let c = comm(&p);
        if works(&c) {
            return (p, c);
        }
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(children.split_whitespace().map(str::to_owned));
        }
    }
    let p = pid.to_string();
    let c = comm(&p);
    (p, c)
}

/// One run of `load` on a fresh server of `kind`.
async fn measure(kind: ServerKind, load: Load) -> Outcome {
    let t = Instant::now();
    let server = setup::server(kind);
    tracing::info!("load: {} started in {:?}", setup::name(kind), t.elapsed());
    let t = Instant::now();
    let prepared = prepare(&server, &load).await;
    tracing::info!("load: {} peers ready in {:?}", load.peers, t.elapsed());
    let outcome = match prepared {
        Ok((clients, channels)) => {
            let outcome = drive(&server, load, channels).await;
            // A shutdown waits for the goodbye to go out at most for the
            // library's close timeout; this guard only keeps a stuck one
            // from hanging the campaign.
            let shutdowns = join_all(clients.iter().map(Client::shutdown));
            if tokio::time::timeout(setup::PATIENCE, shutdowns)
                .await
                .is_err()
            {
                tracing::warn!(
                    "load: a client's shutdown took longer than {:?}",
                    setup::PATIENCE
                );
            }
            outcome
        }
        Err(why) => Outcome::failed(load, why),
    };
    drop(server);
    // The figures of every run, probes included, for whoever watches.
    let row = outcome.row(kind, &load, None);
    tracing::info!(
        "load: {}: held {}: {} [{}]",
        row.case,
        row.held,
        row.figures,
        row.memory.unwrap_or_default()
    );
    outcome
}

/// Clients, the room, a channel each, and connectivity from every peer to
/// every other.
async fn prepare(server: &TestServer, load: &Load) -> Result<(Vec<Client>, Vec<Channel>), String> {
    let room = setup::room(server, "load");
    let names: Vec<String> = (0..load.peers).map(|i| format!("peer{i:02}")).collect();
    let clients: Vec<Client> = join_all(names.iter().map(|n| setup::client(server, n))).await;
    let mut channels: Vec<Channel> = join_all(
        clients
            .iter()
            .map(|c| setup::join(c, &room, "load-instance")),
    )
    .await;
    for i in 0..channels.len() {
        let (before, rest) = channels.split_at_mut(i);
        let (me, after) = rest.split_first_mut().ok_or("no peer")?;
        let mut others: Vec<&mut Channel> = before.iter_mut().chain(after.iter_mut()).collect();
        setup::barrier(me, &mut others)
            .await
            .map_err(|e| format!("barrier from peer {i}: {e}"))?;
    }
    Ok((clients, channels))
}

/// The load itself, on connected channels.
async fn drive(server: &TestServer, load: Load, channels: Vec<Channel>) -> Outcome {
    let (server_pid, server_comm) = server_process(server.pid());
    let peers = load.peers;
    let channels: Vec<Arc<Channel>> = channels.into_iter().map(Arc::new).collect();
    // Room for every sequence number the offered rate can produce.
    let most = (load.duration.as_secs_f64() * load.rate).ceil() as u32 + 2;
    let (finals_tx, finals_rx) = watch::channel::<Option<Arc<Vec<u32>>>>(None);

    let server_cpu0 = cpu_seconds_of(&server_pid);
    let own_cpu0 = cpu_seconds_of("self");
    let server_mem0 = memory_kib_of(&server_pid).0;
    let start = Instant::now();
    let epoch = start;

    // Memory, once a second (sampling, not synchronisation).
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut memory = Memory::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let t = start.elapsed().as_secs_f64().round() as u64;
                    memory.samples.push((t, own_memory_kib().0));
                }
                _ = stop_rx.changed() => break,
            }
        }
        memory
    });

    let receivers: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(me, ch)| {
            let ch = Arc::clone(ch);
            let mut finals = finals_rx.clone();
            tokio::spawn(async move {
                let mut seen = Seen::new(peers, most);
                let guard = tokio::time::sleep(Duration::from_secs(86_400));
                tokio::pin!(guard);
                let mut sent: Option<Arc<Vec<u32>>> = None;
                let mut cap: Option<tokio::time::Instant> = None;
                loop {
                    if let Some(s) = &sent {
                        if seen.complete(me, s) {
                            break;
                        }
                    }
                    tokio::select! {
                        biased;
                        d = ch.recv() => match d {
                            Some(Delivery::Payload(p)) => {
                                seen.take(me, &p.data, load.size, epoch);
                                // Still arriving: a backlog, not a loss.
                                // The guard counts from the last arrival,
                                // within the drain's cap.
                                if let Some(cap) = cap {
                                    let next = tokio::time::Instant::now() + load.drain_guard;
                                    guard.as_mut().reset(next.min(cap));
                                }
                            }
                            Some(Delivery::Lagged { dropped }) => seen.lagged += dropped,
                            Some(Delivery::Connection(_)) | Some(Delivery::Removed(_)) => {
                                seen.connection_events += 1
                            }
                            Some(_) => seen.other += 1,
                            None => break,
                        },
                        changed = finals.changed(), if sent.is_none() => {
                            if changed.is_err() {
                                break;
                            }
                            sent = finals.borrow().clone();
                            if sent.is_some() {
                                let now = tokio::time::Instant::now();
                                cap = Some(now + load.drain_cap);
                                guard.as_mut().reset(now + load.drain_guard);
                            }
                        }
                        _ = &mut guard, if sent.is_some() => break,
                    }
                }
                (seen, Instant::now())
            })
        })
        .collect();

    let period = load.period();
    let senders: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(me, ch)| {
            let ch = Arc::clone(ch);
            // Spread the senders' phases over one period.
            let phase = period.mul_f64(me as f64 / peers as f64);
            let first = tokio::time::Instant::from_std(start) + phase;
            let end = start + load.duration;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(first, period);
                tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
                let mut buf = vec![0u8; load.size];
                // Ticks at phase + k·period before the end.
                let offered = (load.duration.saturating_sub(phase).as_secs_f64()
                    / period.as_secs_f64())
                .ceil() as u32;
                let mut out = Sent {
                    offered,
                    ..Sent::default()
                };
                loop {
                    // The next tick may lie past the end: stop at the end.
                    if tokio::time::timeout_at(end.into(), tick.tick())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let sent_us = now.duration_since(epoch).as_micros() as u64;
                    header(me, out.sent, sent_us, &mut buf);
                    fill_body(me, out.sent, &mut buf);
                    // A send still waiting for room at the end is given
                    // up (nothing was queued): the run's length is fixed,
                    // whatever the server's backlog.
                    let Ok(result) = tokio::time::timeout_at(end.into(), ch.send(&buf)).await
                    else {
                        break;
                    };
                    match result {
                        Ok(()) => out.sent += 1,
                        Err(e) => {
                            out.failed += 1;
                            if out.first_error.is_none() {
                                out.first_error = Some(describe_send_error(&e));
                            }
                        }
                    }
                }
                out
            })
        })
        .collect();

    let sent: Vec<Sent> = join_all(senders)
        .await
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|e| Sent {
                first_error: Some(format!("sender task failed: {e}")),
                failed: 1,
                ..Sent::default()
            })
        })
        .collect();
    let stopped = Instant::now();
    let sending = stopped - start;
    let _ = stop_tx.send(true);
    let finals: Vec<u32> = sent.iter().map(|s| s.sent).collect();
    let _ = finals_tx.send(Some(Arc::new(finals)));
    let mut seen = Vec::with_capacity(peers);
    let mut done = stopped;
    for r in join_all(receivers).await {
        match r {
            Ok((s, at)) => {
                done = done.max(at);
                seen.push(s);
            }
            Err(_) => {
                let mut s = Seen::new(peers, most);
                s.corrupt += 1;
                seen.push(s);
            }
        }
    }
    let own_cpu1 = cpu_seconds_of("self");
    let server_cpu1 = cpu_seconds_of(&server_pid);
    let (server_mem1, server_peak) = memory_kib_of(&server_pid);
    let memory = sampler.await.unwrap_or_default();
    let last_arrival = seen
        .iter()
        .filter_map(|s| s.last_arrival)
        .max()
        .unwrap_or(start);
    Outcome {
        load,
        failed: None,
        sent,
        seen,
        sending,
        drain: done - stopped,
        active: last_arrival - start,
        memory,
        own_cpu: own_cpu0.zip(own_cpu1).map(|(a, b)| b - a),
        server_cpu: server_cpu0.zip(server_cpu1).map(|(a, b)| b - a),
        server_memory: (server_mem0, server_mem1, server_peak),
        server_process: server_comm,
    }
}

fn describe_send_error(e: &SendError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_damage_is_caught() {
        let mut buf = vec![0u8; 64];
        header(3, 7, 1234, &mut buf);
        fill_body(3, 7, &mut buf);
        assert_eq!(parse(&buf), Some((3, 7, 1234)));
        assert!(body_ok(&buf, 3, 7));
        assert!(!body_ok(&buf, 3, 8));
        buf[40] ^= 1;
        assert!(!body_ok(&buf, 3, 7));
    }

    #[test]
    fn receivers_count_duplicates_and_disorder() {
        let epoch = Instant::now();
        let mut seen = Seen::new(3, 10);
        let payload = |seq: u32| {
            let mut b = vec![0u8; 32];
            header(1, seq, 0, &mut b);
            fill_body(1, seq, &mut b);
            b
        };
        for seq in [0, 2, 1, 2] {
            seen.take(0, &payload(seq), 32, epoch);
        }
        assert_eq!(seen.received, 3);
        assert_eq!(seen.duplicated, 1);
        assert_eq!(seen.out_of_order, 1);
        assert!(seen.complete(0, &[0, 3, 0]));
        assert!(!seen.complete(0, &[0, 4, 0]));
        // Our own payload (sender 0 at receiver 0) is an echo.
        let mut own = vec![0u8; 32];
        header(0, 0, 0, &mut own);
        fill_body(0, 0, &mut own);
        seen.take(0, &own, 32, epoch);
        assert_eq!(seen.echoed, 1);
        let mut bad = payload(3);
        bad[20] ^= 0xff;
        seen.take(0, &bad, 32, epoch);
        assert_eq!(seen.corrupt, 1);
    }

    #[test]
    fn latency_quantiles() {
        let mut l = Latency::new();
        for ms in 1..=100u64 {
            l.record(ms * 1000 - 500);
        }
        assert_eq!(l.quantile_us(0.5), 50_000);
        assert_eq!(l.quantile_us(0.99), 99_000);
        l.record(5_000_000);
        assert_eq!(l.max_us, 5_000_000);
        assert_eq!(l.quantile_us(1.0), 5_000_000);
    }

    #[test]
    fn memory_flatness() {
        let mut m = Memory::default();
        for t in 0..=60 {
            m.samples.push((t, 100_000 + t * 10));
        }
        assert!(m.flat(10));
        m.samples.push((61, 200_000));
        assert!(!m.flat(10));
    }
}
