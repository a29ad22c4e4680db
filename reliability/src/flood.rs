//! Part 3: a sender that outruns the server. One client sends payloads
//! back to back (`send().await` after `send().await`, nothing else) into a
//! room where receivers read as fast as they can; the room reflects every
//! payload back to the sender too, so the sender's connection carries the
//! flood both ways. What must hold, for every receiver:
//! sent = received + reported (reported: what the library said was lost,
//! `Delivery::Lagged` at the receiver, `ClientEvent::Unconfirmed` at the
//! sender), nothing duplicated, nothing out of order, and the
//! sender never stalls.
//!
//! "Sent" counts the sends that returned `Ok`; a send that fails told the
//! app at once and is not counted. A receiver that sees anything else (a
//! removal from the room, a reconnection) notes it in the figures: the
//! count must still add up.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::timeout;
use webxdc_realtime_xmpp::{Channel, ClientEvent, ConnectionEvent, Delivery, SendError};
use xmpp_test_server::ServerKind;

use crate::report::{memory_kib_of, own_memory_kib};
use crate::setup::{self, barrier, client, join, name, room, server, PATIENCE};
use crate::{Part, Row, Scale};

/// How long a receiver waits for the next item before it stops counting
/// (a hang guard: a healthy run never pauses this long).
const IDLE: Duration = Duration::from_secs(30);

/// The first bytes of every flood payload (then its number, big-endian).
const TAG: &[u8; 4] = b"fld:";

/// One flood: `count` payloads of `size` bytes to `receivers` receivers.
#[derive(Debug, Clone, Copy)]
struct Case {
    kind: ServerKind,
    count: u32,
    size: usize,
    receivers: usize,
}

/// What one receiver saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    received: u64,
    reported: u64,
    duplicated: u64,
    out_of_order: u64,
    /// When the last payload arrived.
    last_at: Option<Instant>,
    /// Payloads that are not the flood's (must be none).
    foreign: u64,
    /// Anything that is neither a payload nor a `Lagged` count (a removal,
    /// a connection event), for the figures.
    notices: Vec<String>,
}

/// Runs this part at `scale`.
pub async fn run(scale: Scale) -> Vec<Row> {
    let shapes: &[(u32, usize)] = match scale {
        Scale::Quick => &[(2000, 1024), (200, 16 * 1024), (70, 128_000)],
        Scale::Full => &[(20_000, 1024), (3000, 16 * 1024), (400, 128_000)],
    };
    let receivers = match scale {
        Scale::Quick => 1,
        Scale::Full => 2,
    };
    let mut rows = Vec::new();
    for kind in [ServerKind::Prosody, ServerKind::Ejabberd] {
        rows.push(frozen(kind).await);
        if kind == ServerKind::Prosody {
            rows.push(killed_unconfirmed().await);
        }
        for &(count, size) in shapes {
            rows.push(
                flood(Case {
                    kind,
                    count,
                    size,
                    receivers,
                })
                .await,
            );
        }
    }
    rows
}

fn size_name(size: usize) -> String {
    if size.is_multiple_of(1024) && size < 100_000 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

async fn flood(case: Case) -> Row {
    let server = server(case.kind);
    let r = room(&server, "flood");
    let a = client(&server, "sender").await;
    let ca = join(&a, &r, "flood").await;
    let mut clients = Vec::new();
    let mut channels = Vec::new();
    for i in 0..case.receivers {
        let c = client(&server, &format!("receiver{i}")).await;
        channels.push(join(&c, &r, "flood").await);
        clients.push(c);
    }
    let described = format!(
        "{}: {} × {}, back to back, 1 sender (+ its reflection) → {} receiver{}",
        name(case.kind),
        case.count,
        size_name(case.size),
        case.receivers,
        if case.receivers == 1 { "" } else { "s" }
    );
    {
        let mut refs: Vec<&mut Channel> = channels.iter_mut().collect();
        if let Err(e) = barrier(&ca, &mut refs).await {
            return Row::new(Part::Flood, described, e, false);
        }
    }
    // The sender's own reports: stanzas a replaced session lost
    // unconfirmed count as reported to every receiver.
    let mut events = a.events();
    let server_pid = server.pid().to_string();
    let (own_start, _) = own_memory_kib();
    let (server_start, _) = memory_kib_of(&server_pid);

    let started = Instant::now();
    let readers: Vec<_> = channels
        .into_iter()
        .map(|ch| tokio::spawn(read_all(ch, case.count)))
        .collect();

    let mut data = vec![0u8; case.size.max(8)];
    for (i, b) in data.iter_mut().enumerate().skip(8) {
        *b = (i * 131 % 251) as u8;
    }
    data[..4].copy_from_slice(TAG);
    let mut waits = Vec::with_capacity(case.count as usize);
    let mut sent = 0u64;
    let mut failures: Vec<String> = Vec::new();
    let mut server_peak = server_start;
    let sending = async {
        for n in 0..case.count {
            data[4..8].copy_from_slice(&n.to_be_bytes());
            let t0 = Instant::now();
            match ca.send(&data).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    let e: SendError = e;
                    if failures.len() < 3 {
                        failures.push(format!("#{n}: {e}"));
                    }
                }
            }
            waits.push(t0.elapsed());
            if n.is_multiple_of(256) {
                server_peak = server_peak.max(memory_kib_of(&server_pid).0);
            }
        }
    };
    // A hang guard only: a healthy run takes seconds.
    let stalled = timeout(Duration::from_secs(600), sending).await.is_err();
    let send_time = started.elapsed();

    let mut seen = Vec::new();
    for r in readers {
        seen.push(r.await.unwrap_or_default());
    }
    let mut unconfirmed = 0u64;
    let mut sender_notices = Vec::new();
    while let Ok(ev) = events.try_recv() {
        match ev {
            ClientEvent::Unconfirmed { stanzas } => unconfirmed += stanzas,
            other => {
                if sender_notices.len() < 3 {
                    sender_notices.push(format!("{other:?}"));
                }
            }
        }
    }
    let (own_end, own_peak) = own_memory_kib();
    let (server_end, _) = memory_kib_of(&server_pid);
    server_peak = server_peak.max(server_end);
    let log = server.log_tail(4000);
    let kicked = log.lines().filter(|l| l.contains("unacked")).count();
    drop(ca);
    a.shutdown().await;
    for c in clients {
        c.shutdown().await;
    }

    waits.sort();
    let p50 = waits.get(waits.len() / 2).copied().unwrap_or_default();
    let max = waits.last().copied().unwrap_or_default();
    let rate = sent as f64 / send_time.as_secs_f64().max(1e-9);
    let mib = rate * case.size as f64 / (1024.0 * 1024.0);
    // Until the last receiver had its last payload: the rate the room
    // actually carried (sends may run up to the window ahead of it).
    let delivered = seen
        .iter()
        .filter_map(|s| s.last_at)
        .max()
        .map_or(0.0, |t| {
            let n = seen.iter().map(|s| s.received).min().unwrap_or(0);
            n as f64 / t.duration_since(started).as_secs_f64().max(1e-9)
        });
    let mut held = !stalled && failures.is_empty() && sent == u64::from(case.count);
    let mut per = Vec::new();
    for s in &seen {
        let reported = s.reported + unconfirmed;
        let lost = sent.saturating_sub(s.received + reported);
        held &= s.received + reported == sent
            && s.duplicated == 0
            && s.out_of_order == 0
            && s.foreign == 0;
        per.push(format!(
            "received {}, reported {}, lost {lost}, duplicated {}, out of order {}, foreign {}{}",
            s.received,
            reported,
            s.duplicated,
            s.out_of_order,
            s.foreign,
            if s.notices.is_empty() {
                String::new()
            } else {
                format!(" (also: {})", s.notices.join(", "))
            }
        ));
    }
    let mut figures = format!(
        "sent {sent}; {}; send().await p50 {:.0} µs / max {:.1} ms; sent {rate:.0}/s ({mib:.1} MiB/s), delivered {delivered:.0}/s",
        per.join("; "),
        p50.as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e3,
    );
    if !sender_notices.is_empty() {
        figures.push_str(&format!("; sender saw {}", sender_notices.join(", ")));
    }
    if stalled {
        figures.push_str("; the sender stalled");
    }
    if !failures.is_empty() {
        figures.push_str(&format!("; send failed: {}", failures.join(", ")));
    }
    if kicked > 0 {
        figures.push_str(&format!("; server log: {kicked} lines on unacked stanzas"));
    }
    Row::new(Part::Flood, described, figures, held).with_memory(format!(
        "own {} → {} (peak {}) MiB; server {} → {} (peak {}) MiB",
        own_start / 1024,
        own_end / 1024,
        own_peak / 1024,
        server_start / 1024,
        server_end / 1024,
        server_peak / 1024
    ))
}

/// Reads until the last payload arrives, or nothing arrives for [`IDLE`].
async fn read_all(mut ch: Channel, count: u32) -> Seen {
    let mut seen = Seen::default();
    let mut last: Option<u32> = None;
    while let Ok(Some(item)) = timeout(IDLE, ch.next()).await {
        match item {
            Delivery::Payload(p) => {
                let Some(n) = p
                    .data
                    .strip_prefix(TAG)
                    .and_then(|rest| rest.get(..4))
                    .and_then(|b| b.try_into().ok())
                else {
                    seen.foreign += 1;
                    continue;
                };
                let n = u32::from_be_bytes(n);
                match last {
                    Some(prev) if n == prev => seen.duplicated += 1,
                    Some(prev) if n < prev => seen.out_of_order += 1,
                    _ => {}
                }
                last = Some(last.map_or(n, |prev| prev.max(n)));
                seen.received += 1;
                seen.last_at = Some(Instant::now());
                if n + 1 == count {
                    break;
                }
            }
            Delivery::Lagged { dropped } => seen.reported += dropped,
            other => {
                if seen.notices.len() < 3 {
                    seen.notices.push(format!("{other:?}"));
                }
            }
        }
    }
    seen
}

/// How many sends a frozen server may take before `send().await` waits:
/// the send window plus the command queue in front of it (64 each), with
/// room for the session's own stanzas. Without the window, the socket's
/// buffers took thousands of 1 KiB payloads first.
const FROZEN_BOUND: u64 = 160;

/// How long a send may wait before it counts as held back (the server is
/// stopped, so nothing can complete it; a hang guard, not a sync).
const HELD_BACK: Duration = Duration::from_secs(2);

/// `send().await` waits for the server, not for the socket: with the
/// server stopped (SIGSTOP), sends stop completing after the window; with
/// it running again, every accepted payload arrives.
async fn frozen(kind: ServerKind) -> Row {
    let server = server(kind);
    let r = room(&server, "frozen");
    let a = client(&server, "sender").await;
    let b = client(&server, "receiver").await;
    let ca = join(&a, &r, "frozen").await;
    let mut cb = join(&b, &r, "frozen").await;
    let described = format!(
        "{}: server stopped (SIGSTOP) under a 1 KiB flood, then continued",
        name(kind)
    );
    if let Err(e) = barrier(&ca, &mut [&mut cb]).await {
        return Row::new(Part::Flood, described, e, false);
    }
    let pid = server.pid();
    let signal = |sig: &str| setup::signal(pid, sig).is_ok();
    if !signal("-STOP") {
        return Row::new(Part::Flood, described, "could not stop the server", false);
    }
    let mut data = vec![0u8; 1024];
    data[..4].copy_from_slice(TAG);
    let mut accepted = 0u32;
    let mut stopped_by = String::from("the cap");
    // Cap: far beyond what any buffer between us and the server holds.
    while accepted < 20_000 {
        data[4..8].copy_from_slice(&accepted.to_be_bytes());
        match timeout(HELD_BACK, ca.send(&data)).await {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(e)) => {
                stopped_by = format!("an error: {e}");
                break;
            }
            Err(_) => {
                stopped_by = format!("a send held back for {HELD_BACK:?}");
                break;
            }
        }
    }
    let continued = signal("-CONT");
    let reader = tokio::spawn(read_all(cb, accepted));
    let seen = reader.await.unwrap_or_default();
    drop(ca);
    a.shutdown().await;
    b.shutdown().await;
    let accepted = u64::from(accepted);
    let held = continued
        && accepted > 0
        && accepted <= FROZEN_BOUND
        && stopped_by.starts_with("a send held")
        && seen.received + seen.reported == accepted
        && seen.duplicated == 0
        && seen.out_of_order == 0;
    Row::new(
        Part::Flood,
        described,
        format!(
            "sends completed while stopped {accepted} (bound {FROZEN_BOUND}), then {stopped_by}; after continuing: \
             received {}, reported {}, duplicated {}, out of order {}",
            seen.received, seen.reported, seen.duplicated, seen.out_of_order
        ),
        held,
    )
}

/// A session lost with stanzas in the window is reported with their
/// count: the server is stopped under a flood (the window fills), killed
/// and started again; the client's new session must say how many stanzas
/// the old one took down unconfirmed (`ClientEvent::Unconfirmed`).
async fn killed_unconfirmed() -> Row {
    let mut server = server(ServerKind::Prosody);
    let r = room(&server, "killed");
    let a = client(&server, "sender").await;
    let b = client(&server, "receiver").await;
    let ca = join(&a, &r, "killed").await;
    let mut cb = join(&b, &r, "killed").await;
    let described = "Prosody: server stopped under a 1 KiB flood, killed, started again";
    if let Err(e) = barrier(&ca, &mut [&mut cb]).await {
        return Row::new(Part::Flood, described, e, false);
    }
    let mut events = a.events();
    let pid = server.pid();
    let signal = |sig: &str| setup::signal(pid, sig).is_ok();
    if !signal("-STOP") {
        return Row::new(Part::Flood, described, "could not stop the server", false);
    }
    let mut data = vec![0u8; 1024];
    data[..4].copy_from_slice(TAG);
    let mut accepted = 0u64;
    while accepted < 20_000 {
        data[4..8].copy_from_slice(&(accepted as u32).to_be_bytes());
        match timeout(HELD_BACK, ca.send(&data)).await {
            Ok(Ok(())) => accepted += 1,
            _ => break,
        }
    }
    let killed = signal("-KILL");
    let restarted = server.restart().is_ok();
    // Wait for the new session; the report comes before it.
    let mut unconfirmed = 0u64;
    let mut reconnected = false;
    let _ = timeout(PATIENCE * 2, async {
        while let Some(ev) = events.recv().await {
            match ev {
                ClientEvent::Unconfirmed { stanzas } => unconfirmed += stanzas,
                ClientEvent::Connection(ConnectionEvent::Reconnected { .. }) => {
                    reconnected = true;
                    break;
                }
                _ => {}
            }
        }
    })
    .await;
    drop(ca);
    a.shutdown().await;
    b.shutdown().await;
    let held = killed && restarted && reconnected && accepted > 0 && unconfirmed >= accepted;
    Row::new(
        Part::Flood,
        described,
        format!(
            "sends accepted while stopped {accepted}; reported unconfirmed after the new session {unconfirmed} \
             (payloads and presences); reconnected {reconnected}"
        ),
        held,
    )
}
