//! Workloads 1-5 and 10, written once against the conformance suite's harness
//! trait, so every backend runs exactly the same code.
//!
//! Timing: sender and receiver live in one process and read one monotonic
//! clock. Each payload carries its sequence number and the send time
//! (nanoseconds since [`epoch`]) in its first 16 bytes; the receiver takes
//! the arrival time the moment its `recv` resolves. Sender and receiver
//! futures run concurrently (`join!`), so a `send` that returns late cannot
//! delay when an arrival is noticed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;
use spec_tests::harness::{Channel, Harness, JoinFailure, Received};

use crate::stats::{Summary, Timer};

/// The shared clock's zero.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A payload of `size` bytes (at least 16) stamped with `seq` and now.
pub fn stamped(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&now_ns().to_le_bytes());
}

/// `(seq, sent at)` of a stamped payload; `None` for anything else (a
/// barrier marker, a short payload).
pub fn read_stamp(p: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let at = u64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    Some((seq, at))
}

/// A payload buffer whose filler bytes are not all equal (compressible
/// filler would flatter a transport that compresses).
pub fn payload(size: usize) -> Vec<u8> {
    let size = size.max(16);
    (0..size).map(|i| (i * 131 % 251) as u8).collect()
}

fn to_us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Joins or explains why not.
pub async fn join<H: Harness>(
    h: &mut H,
    chat: &H::Chat,
    member: usize,
    instance: &str,
) -> Result<H::Channel, String> {
    match h.join(chat, member, instance).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(JoinFailure::AlreadyJoined)) => Err(format!("join {instance}: already joined")),
        Ok(Err(e)) => Err(format!("join {instance}: {e:?}")),
        Err(e) => Err(format!("join {instance}: {e}")),
    }
}

/// Makes sure every receiver hears the sender before anything is timed.
async fn connect<C: Channel>(sender: &mut C, receivers: &mut [&mut C]) -> Result<(), String> {
    spec_tests::sync::barrier(sender, receivers).await
}

/// Waits for the payload stamped `seq`, skipping older ones (a barrier
/// marker, a payload that overtook its timeout). Returns the arrival time
/// and the send time from the stamp.
pub async fn await_seq<C: Channel>(
    ch: &mut C,
    seq: u64,
    timeout: Duration,
) -> Result<(u64, u64), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ch.recv(left).await {
            Received::Payload(p) => {
                let arrived = now_ns();
                match read_stamp(&p) {
                    Some((s, at)) if s == seq => return Ok((arrived, at)),
                    _ => continue,
                }
            }
            Received::Timeout => {
                return Err(format!("payload {seq} not received within {timeout:?}"))
            }
            Received::Lagged(n) => return Err(format!("lagged ({n} dropped)")),
            Received::Closed => return Err("channel closed".into()),
            _ => return Err("unexpected receive result".into()),
        }
    }
}

/// Workloads 1 and 2 (and 8): one-way latency, one payload in flight.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub size: usize,
    pub samples: usize,
    pub warmup: usize,
    /// Payloads that did not arrive within the timeout.
    pub lost: usize,
    pub us: Summary,
}

pub async fn latency<H: Harness>(
    h: &mut H,
    size: usize,
    warmup: usize,
    samples: usize,
    timeout: Duration,
) -> Result<Latency, String> {
    let chat = h.new_chat(2).await.map_err(|e| e.to_string())?;
    let instance = format!("latency-{size}");
    let mut a = join(h, &chat, 0, &instance).await?;
    let mut b = join(h, &chat, 1, &instance).await?;
    connect(&mut a, &mut [&mut b]).await?;
    let mut buf = payload(size);
    let mut t = Timer::default();
    let mut lost = 0;
    for i in 0..(warmup + samples) as u64 {
        stamped(&mut buf, i);
        let (sent, got) = tokio::join!(a.send(&buf), await_seq(&mut b, i, timeout));
        sent.map_err(|e| format!("send: {e:?}"))?;
        match got {
            Ok((arrived, at)) if i >= warmup as u64 => t.push(to_us(arrived.saturating_sub(at))),
            Ok(_) => {}
            Err(e) if e.starts_with("payload") => lost += 1,
            Err(e) => return Err(e),
        }
    }
    a.leave().await;
    b.leave().await;
    Ok(Latency {
        size,
        samples,
        warmup,
        lost,
        us: t.summary(),
    })
}

/// Workload 3 (and 8): one sender, one receiver, 1 KiB payloads for a
/// fixed time.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub size: usize,
    pub seconds: f64,
    pub sent: u64,
    pub received: u64,
    /// sent - received, after draining (lagged drops included).
    pub lost: u64,
    /// Payloads the library reported as dropped (Lagged).
    pub lagged: u64,
    pub duplicates_or_reordered: u64,
    /// Received payloads per second, from the first send to the last
    /// arrival.
    pub delivered_per_s: f64,
    /// Sends completed per second while the sender ran (the pace the
    /// transport let the sender go).
    pub sent_per_s: f64,
    /// How long single `send().await` calls took (µs): where a transport
    /// pushes back, it shows here.
    pub send_wait_us: Summary,
    /// Whether the receiver stopped waiting with payloads still missing.
    pub drain_gave_up: bool,
    /// Whether a send was still parked when the run's time was up.
    pub send_blocked_at_end: bool,
}

pub async fn throughput<H: Harness>(
    h: &mut H,
    size: usize,
    run: Duration,
    drain: Duration,
) -> Result<Throughput, String> {
    let chat = h.new_chat(2).await.map_err(|e| e.to_string())?;
    let mut a = join(h, &chat, 0, "throughput").await?;
    let mut b = join(h, &chat, 1, "throughput").await?;
    connect(&mut a, &mut [&mut b]).await?;

    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let start = now_ns();
    let sender = async {
        let mut buf = payload(size);
        let mut waits = Timer::default();
        let until = Instant::now() + run;
        let mut seq = 0u64;
        let mut err = None;
        let mut blocked = false;
        while Instant::now() < until {
            stamped(&mut buf, seq);
            let t0 = Instant::now();
            // A transport that pushes back may park a send for minutes (a
            // throttled server behind megabytes of socket buffer): the run
            // ends on time anyway. Dropping a pending send is fine for
            // every backend here: nothing is queued until it returns.
            match tokio::time::timeout_at(until.into(), a.send(&buf)).await {
                Err(_) => {
                    waits.push(t0.elapsed().as_secs_f64() * 1e6);
                    blocked = true;
                    break;
                }
                Ok(Err(e)) => {
                    err = Some(format!("send: {e:?}"));
                    break;
                }
                Ok(Ok(())) => {}
            }
            waits.push(t0.elapsed().as_secs_f64() * 1e6);
            seq += 1;
            sent.store(seq, Ordering::Release);
        }
        let elapsed = (now_ns() - start) as f64 / 1e9;
        done.store(true, Ordering::Release);
        (waits, elapsed, err, blocked)
    };
    let receiver = async {
        let mut received = 0u64;
        let mut lagged = 0u64;
        let mut disorder = 0u64;
        let mut next = 0u64;
        let mut last = start;
        // The drain is bounded in total, not by idleness: a throttled
        // server trickles payloads for minutes.
        let mut drain_until: Option<Instant> = None;
        let mut gave_up = false;
        loop {
            let finished = done.load(Ordering::Acquire);
            if finished && received + lagged >= sent.load(Ordering::Acquire) {
                break;
            }
            match b.recv(Duration::from_millis(100)).await {
                Received::Payload(p) => {
                    if let Some((seq, _)) = read_stamp(&p) {
                        if seq != next {
                            disorder += 1;
                        }
                        next = seq + 1;
                        received += 1;
                        last = now_ns();
                    }
                }
                Received::Lagged(n) => lagged += n,
                Received::Timeout => {}
                _ => break,
            }
            if finished
                && *drain_until.get_or_insert_with(|| Instant::now() + drain) <= Instant::now()
            {
                gave_up = true;
                break;
            }
        }
        (received, lagged, disorder, last, gave_up)
    };
    let ((waits, elapsed, err, blocked), (received, lagged, disorder, last, gave_up)) =
        tokio::join!(sender, receiver);
    if let Some(e) = err {
        return Err(e);
    }
    a.leave().await;
    b.leave().await;
    let sent = sent.load(Ordering::Acquire);
    let span = (last.saturating_sub(start)) as f64 / 1e9;
    Ok(Throughput {
        size,
        seconds: run.as_secs_f64(),
        sent,
        received,
        lost: sent.saturating_sub(received),
        lagged,
        duplicates_or_reordered: disorder,
        delivered_per_s: if span > 0.0 {
            received as f64 / span
        } else {
            0.0
        },
        sent_per_s: sent as f64 / elapsed.max(1e-9),
        send_wait_us: waits.summary(),
        drain_gave_up: gave_up,
        send_blocked_at_end: blocked,
    })
}

/// Workload 4: one sender, n receivers.
#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub receivers: usize,
    pub size: usize,
    pub samples: usize,
    pub lost: usize,
    /// Until the last receiver has it (µs).
    pub all_us: Summary,
    /// Bytes the sender writes per payload (exact or computed; see
    /// `sender_bytes_note`).
    pub sender_bytes: Option<u64>,
    pub sender_bytes_note: String,
    /// Bytes that crossed the loopback interface per payload, all processes
    /// of the benchmark's network namespace together (headers, acks and
    /// every hop included).
    pub loopback_bytes: Option<f64>,
}

pub async fn fanout<H: Harness>(
    h: &mut H,
    receivers: usize,
    size: usize,
    samples: usize,
    timeout: Duration,
    budget: Duration,
) -> Result<Fanout, String> {
    let chat = h.new_chat(receivers + 1).await.map_err(|e| e.to_string())?;
    let instance = format!("fanout-{receivers}");
    let mut a = join(h, &chat, 0, &instance).await?;
    let mut rs = Vec::with_capacity(receivers);
    for m in 1..=receivers {
        rs.push(join(h, &chat, m, &instance).await?);
    }
    {
        let mut refs: Vec<&mut H::Channel> = rs.iter_mut().collect();
        connect(&mut a, &mut refs).await?;
    }
    let mut buf = payload(size);
    let mut t = Timer::default();
    let mut lost = 0;
    let lo_before = crate::sys::loopback_bytes();
    // A backend that loses payloads would otherwise spend `timeout` on each
    // remaining sample; the budget keeps the run bounded (fewer samples
    // are then reported in `all_us.n`).
    let budget_end = Instant::now() + budget;
    let mut done = 0u64;
    for i in 0..samples as u64 {
        if Instant::now() >= budget_end {
            break;
        }
        done += 1;
        stamped(&mut buf, i);
        let waits = join_all(rs.iter_mut().map(|r| await_seq(r, i, timeout)));
        let (sent, got) = tokio::join!(a.send(&buf), waits);
        sent.map_err(|e| format!("send: {e:?}"))?;
        let mut last = 0;
        let mut missing = false;
        for g in got {
            match g {
                Ok((arrived, at)) => last = last.max(arrived.saturating_sub(at)),
                Err(e) if e.starts_with("payload") => missing = true,
                Err(e) => return Err(e),
            }
        }
        if missing {
            lost += 1;
        } else {
            t.push(to_us(last));
        }
    }
    let lo_after = crate::sys::loopback_bytes();
    a.leave().await;
    for mut r in rs {
        r.leave().await;
    }
    Ok(Fanout {
        receivers,
        size,
        samples: done as usize,
        lost,
        all_us: t.summary(),
        sender_bytes: None,
        sender_bytes_note: String::new(),
        loopback_bytes: match (lo_before, lo_after) {
            (Some(b), Some(a)) if done > 0 => Some(a.saturating_sub(b) as f64 / done as f64),
            _ => None,
        },
    })
}

/// Workload 5: a newcomer joins while another member sends continuously.
#[derive(Debug, Clone, Serialize)]
pub struct JoinFirst {
    pub samples: usize,
    pub send_interval_us: u64,
    pub failed: usize,
    /// From the start of `join` to its first payload (µs).
    pub first_us: Summary,
    /// How long the `join` call itself took (µs).
    pub join_call_us: Summary,
}

pub async fn join_to_first<H: Harness>(
    h: &mut H,
    samples: usize,
    interval: Duration,
    timeout: Duration,
) -> Result<JoinFirst, String> {
    let chat = h.new_chat(2).await.map_err(|e| e.to_string())?;
    let mut first = Timer::default();
    let mut call = Timer::default();
    let mut failed = 0;
    for k in 0..samples {
        let instance = format!("join-{k}");
        let mut a = join(h, &chat, 0, &instance).await?;
        let stop = AtomicBool::new(false);
        let sender = async {
            let mut buf = payload(32);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0;
            while !stop.load(Ordering::Acquire) {
                tick.tick().await;
                stamped(&mut buf, seq);
                seq += 1;
                // A failed send is retried at the next tick: the newcomer's
                // wait is what is measured.
                let _ = a.send(&buf).await;
            }
        };
        let newcomer = async {
            let t0 = Instant::now();
            let joined = join(h, &chat, 1, &instance).await;
            let joined_at = t0.elapsed();
            let result = match joined {
                Ok(mut b) => {
                    let deadline = Instant::now() + timeout;
                    let mut got = None;
                    while Instant::now() < deadline {
                        match b.recv(deadline - Instant::now()).await {
                            Received::Payload(p) if read_stamp(&p).is_some() => {
                                got = Some(t0.elapsed());
                                break;
                            }
                            Received::Payload(_) | Received::Lagged(_) => continue,
                            _ => break,
                        }
                    }
                    b.leave().await;
                    Ok(got.map(|g| (joined_at, g)))
                }
                Err(e) => Err(e),
            };
            stop.store(true, Ordering::Release);
            result
        };
        let ((), result) = tokio::join!(sender, newcomer);
        a.leave().await;
        match result? {
            Some((j, f)) => {
                call.push(j.as_secs_f64() * 1e6);
                first.push(f.as_secs_f64() * 1e6);
            }
            None => failed += 1,
        }
    }
    Ok(JoinFirst {
        samples,
        send_interval_us: interval.as_micros() as u64,
        failed,
        first_us: first.summary(),
        join_call_us: call.summary(),
    })
}

/// Workload 10's chunk size: what apps built on `@webxdc/realtime` send
/// files in, back to back.
pub const BULK_CHUNK: usize = 126_000;

/// What a bulk-workload payload is, from its tag (bytes 16..20, after the
/// stamp): a chunk of the transfer, or a small payload of path (a) or (b).
const TAG_CHUNK: &[u8; 4] = b"CHNK";
const TAG_SAME_SENDER: &[u8; 4] = b"SMLA";
const TAG_OTHER_MEMBER: &[u8; 4] = b"SMLB";

/// The byte at `i` of chunk `seq`: depends on both, so that a chunk that
/// arrives damaged, or as another chunk's bytes, is noticed.
fn chunk_byte(seq: u64, i: usize) -> u8 {
    ((i as u64)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(7919))
        % 251) as u8
}

/// Chunk `seq` of `len` bytes (at least 20): the stamp, the tag, then
/// [`chunk_byte`]s.
fn fill_chunk(buf: &mut Vec<u8>, seq: u64, len: usize) {
    buf.clear();
    buf.extend((0..len).map(|i| chunk_byte(seq, i)));
    stamped(buf, seq);
    buf[16..20].copy_from_slice(TAG_CHUNK);
}

/// Whether `p` is chunk `seq` of the right length, intact.
fn chunk_intact(p: &[u8], seq: u64, len: usize) -> bool {
    p.len() == len
        && p[20..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == chunk_byte(seq, i + 20))
}

fn tag(p: &[u8]) -> Option<&[u8]> {
    p.get(16..20)
}

/// A small (32 B) payload of a path: the stamp and the path's tag.
fn small(seq: u64, tag: &[u8; 4]) -> Vec<u8> {
    let mut buf = payload(32);
    stamped(&mut buf, seq);
    buf[16..20].copy_from_slice(tag);
    buf
}

/// Workload 10: a large transfer in chunks, and small payloads meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct Bulk {
    /// Bytes of the transfer.
    pub total_bytes: usize,
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_bytes: usize,
    pub chunks: usize,
    /// Chunks each of the two receivers got in order and intact.
    pub received: [u64; 2],
    /// Chunks that arrived out of order, twice or damaged (both receivers).
    pub bad: u64,
    /// Payloads the receivers were told they lost (`Lagged`).
    pub lagged: u64,
    /// First send to the last chunk at the slower receiver (s).
    pub seconds: f64,
    /// `total_bytes` / `seconds`, in MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// How long single `send().await` calls of the chunks took (µs).
    pub chunk_send_us: Summary,
    /// The small payloads' send interval during the transfer (µs).
    pub small_interval_us: u64,
    /// (a) the bulk sender on another instance (a second channel of the
    /// same member) to receiver 1, during the transfer: send to arrival
    /// (µs), the wait in `send()` included.
    pub same_sender_us: Summary,
    /// (b) a fourth member on the bulk instance to receiver 1, during the
    /// transfer (µs).
    pub other_member_us: Summary,
    /// (a)'s path on an idle channel, before the transfer (µs).
    pub idle_same_sender_us: Summary,
    /// (b)'s path on an idle channel, before the transfer (µs).
    pub idle_other_member_us: Summary,
    /// Small payloads of (a) and (b) sent during the transfer.
    pub small_sent: [u64; 2],
    /// Of those, how many never arrived.
    pub small_lost: [u64; 2],
    /// (a) payloads that arrived at receiver 1 before its last chunk: with
    /// small payloads stuck behind the transfer, this is about 0.
    pub same_sender_before_last_chunk: u64,
    /// Whether a receiver stopped waiting with chunks missing.
    pub gave_up: bool,
}

/// One payload at a time from `tx` to `rx` (an idle channel): `samples`
/// latencies (µs) of small payloads tagged `tag`.
async fn idle_small<C: Channel>(
    tx: &mut C,
    rx: &mut C,
    tag: &[u8; 4],
    samples: usize,
    timeout: Duration,
) -> Result<Summary, String> {
    let mut t = Timer::default();
    for i in 0..samples as u64 {
        let buf = small(i, tag);
        let (sent, got) = tokio::join!(tx.send(&buf), await_seq(rx, i, timeout));
        sent.map_err(|e| format!("send: {e:?}"))?;
        let (arrived, at) = got?;
        t.push(to_us(arrived.saturating_sub(at)));
    }
    Ok(t.summary())
}

/// A small-payload path of the bulk workload: its sender's count, and
/// whether the sender has stopped (the count is final).
#[derive(Default)]
struct SmallPath {
    sent: AtomicU64,
    done: AtomicBool,
}

/// Sends small payloads tagged `tag` every `interval` until both bulk
/// receivers are done (`finished` reaches 2).
async fn small_sender<C: Channel>(
    ch: &mut C,
    tag: &[u8; 4],
    interval: Duration,
    finished: &AtomicU64,
    path: &SmallPath,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0;
    let mut result = Ok(());
    while finished.load(Ordering::Acquire) < 2 {
        tick.tick().await;
        // Stamped before the send: a send that waits behind the transfer
        // counts in the latency.
        let buf = small(seq, tag);
        if let Err(e) = ch.send(&buf).await {
            result = Err(format!("send: {e:?}"));
            break;
        }
        seq += 1;
        path.sent.store(seq, Ordering::Release);
    }
    path.done.store(true, Ordering::Release);
    result
}

/// Receives a small-payload path until its sender stopped and everything
/// it sent is in (or nothing came for `idle`): the latencies (µs), how
/// many arrived, and when each arrived.
async fn small_receiver<C: Channel>(
    ch: &mut C,
    tag: &[u8; 4],
    path: &SmallPath,
    idle: Duration,
) -> (Timer, u64, Vec<u64>) {
    let mut t = Timer::default();
    let mut got = 0u64;
    let mut arrivals = Vec::new();
    let mut last_any = Instant::now();
    loop {
        if path.done.load(Ordering::Acquire)
            && (got >= path.sent.load(Ordering::Acquire) || last_any.elapsed() >= idle)
        {
            break;
        }
        match ch.recv(Duration::from_millis(100)).await {
            Received::Payload(p) => {
                let arrived = now_ns();
                last_any = Instant::now();
                if let (Some((_, at)), Some(tg)) = (read_stamp(&p), self::tag(&p)) {
                    if tg == tag {
                        got += 1;
                        t.push(to_us(arrived.saturating_sub(at)));
                        arrivals.push(arrived);
                    }
                }
            }
            Received::Closed => break,
            _ => {}
        }
    }
    (t, got, arrivals)
}

/// What one receiver of the bulk instance saw.
#[derive(Default)]
struct BulkSide {
    received: u64,
    bad: u64,
    lagged: u64,
    last_chunk_ns: u64,
    gave_up: bool,
}

/// Receives the transfer on `ch` until every chunk is in, or nothing came
/// for `idle`; counts itself in `finished` then.
async fn bulk_receiver<C: Channel>(
    ch: &mut C,
    chunks: usize,
    sizes: &(dyn Fn(u64) -> usize + Sync),
    idle: Duration,
    finished: &AtomicU64,
) -> BulkSide {
    let mut side = BulkSide::default();
    let mut next = 0u64;
    let mut last_any = Instant::now();
    while (next as usize) < chunks && last_any.elapsed() < idle {
        match ch.recv(Duration::from_millis(100)).await {
            Received::Payload(p) => {
                let arrived = now_ns();
                last_any = Instant::now();
                let Some((seq, _)) = read_stamp(&p) else {
                    continue;
                };
                if tag(&p) != Some(&TAG_CHUNK[..]) {
                    continue;
                }
                if seq == next && chunk_intact(&p, seq, sizes(seq)) {
                    side.received += 1;
                    side.last_chunk_ns = arrived;
                } else {
                    side.bad += 1;
                }
                next = seq + 1;
            }
            Received::Lagged(n) => side.lagged += n,
            Received::Timeout => {}
            _ => break,
        }
    }
    side.gave_up = (next as usize) < chunks;
    finished.fetch_add(1, Ordering::AcqRel);
    side
}

/// Workload 10: one sender (member 0) sends `total` bytes on instance
/// "bulk" as chunks of at most `chunk` bytes, back to back, to two
/// receivers (members 1 and 2). Small payloads go meanwhile every
/// `interval` to receiver 1: (a) from the bulk sender on instance "other"
/// (a second channel of the same member), (b) from a fourth member on
/// instance "side". `idle_samples` small payloads per path measure the
/// idle channels first; a receiver gives up after `idle` without a chunk.
pub async fn bulk<H: Harness>(
    h: &mut H,
    total: usize,
    chunk: usize,
    interval: Duration,
    idle_samples: usize,
    idle: Duration,
) -> Result<Bulk, String> {
    let chat = h.new_chat(4).await.map_err(|e| e.to_string())?;
    let mut s_bulk = join(h, &chat, 0, "bulk").await?;
    let mut s_other = join(h, &chat, 0, "other").await?;
    let mut r1_bulk = join(h, &chat, 1, "bulk").await?;
    let mut r1_other = join(h, &chat, 1, "other").await?;
    let mut r1_side = join(h, &chat, 1, "side").await?;
    let mut r2_bulk = join(h, &chat, 2, "bulk").await?;
    let mut m3_side = join(h, &chat, 3, "side").await?;
    connect(&mut s_bulk, &mut [&mut r1_bulk, &mut r2_bulk]).await?;
    connect(&mut s_other, &mut [&mut r1_other]).await?;
    connect(&mut m3_side, &mut [&mut r1_side]).await?;

    let timeout = Duration::from_secs(5);
    let idle_a = idle_small(
        &mut s_other,
        &mut r1_other,
        TAG_SAME_SENDER,
        idle_samples,
        timeout,
    )
    .await?;
    let idle_b = idle_small(
        &mut m3_side,
        &mut r1_side,
        TAG_OTHER_MEMBER,
        idle_samples,
        timeout,
    )
    .await?;

    let chunks = total.div_ceil(chunk);
    let sizes = move |seq: u64| chunk.min(total - seq as usize * chunk);
    let path_a = SmallPath::default();
    let path_b = SmallPath::default();
    let finished = AtomicU64::new(0);
    let start = now_ns();

    let sender = async {
        let mut buf = Vec::with_capacity(chunk);
        let mut waits = Timer::default();
        for seq in 0..chunks as u64 {
            fill_chunk(&mut buf, seq, sizes(seq));
            let t0 = Instant::now();
            s_bulk
                .send(&buf)
                .await
                .map_err(|e| format!("send: {e:?}"))?;
            waits.push(t0.elapsed().as_secs_f64() * 1e6);
            // A send that never waits would keep the other futures of this
            // task (the receivers, whose clock readings are the figures)
            // from running.
            tokio::task::yield_now().await;
        }
        Ok::<_, String>(waits)
    };
    let (waits, a, b, (ta, got_a, arrivals_a), (tb, got_b, _), side1, side2) = tokio::join!(
        sender,
        small_sender(&mut s_other, TAG_SAME_SENDER, interval, &finished, &path_a),
        small_sender(&mut m3_side, TAG_OTHER_MEMBER, interval, &finished, &path_b),
        small_receiver(&mut r1_other, TAG_SAME_SENDER, &path_a, idle),
        small_receiver(&mut r1_side, TAG_OTHER_MEMBER, &path_b, idle),
        bulk_receiver(&mut r1_bulk, chunks, &sizes, idle, &finished),
        bulk_receiver(&mut r2_bulk, chunks, &sizes, idle, &finished),
    );
    let waits = waits?;
    a?;
    b?;
    for mut c in [
        s_bulk, s_other, r1_bulk, r1_other, r1_side, r2_bulk, m3_side,
    ] {
        c.leave().await;
    }
    let last = side1.last_chunk_ns.max(side2.last_chunk_ns);
    let seconds = last.saturating_sub(start) as f64 / 1e9;
    let received = [side1.received, side2.received];
    let delivered = received[0].min(received[1]);
    let bytes: usize = (0..delivered).map(sizes).sum();
    let sent = [
        path_a.sent.load(Ordering::Acquire),
        path_b.sent.load(Ordering::Acquire),
    ];
    Ok(Bulk {
        total_bytes: total,
        chunk_bytes: chunk,
        chunks,
        received,
        bad: side1.bad + side2.bad,
        lagged: side1.lagged + side2.lagged,
        seconds,
        mb_per_s: if seconds > 0.0 {
            bytes as f64 / 1e6 / seconds
        } else {
            0.0
        },
        chunk_send_us: waits.summary(),
        small_interval_us: interval.as_micros() as u64,
        same_sender_us: ta.summary(),
        other_member_us: tb.summary(),
        idle_same_sender_us: idle_a,
        idle_other_member_us: idle_b,
        small_sent: sent,
        small_lost: [sent[0].saturating_sub(got_a), sent[1].saturating_sub(got_b)],
        same_sender_before_last_chunk: arrivals_a
            .iter()
            .filter(|t| **t < side1.last_chunk_ns)
            .count() as u64,
        gave_up: side1.gave_up || side2.gave_up,
    })
}
