//! Workloads 1-5, written once against the conformance suite's harness
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
