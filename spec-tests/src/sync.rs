//! Synchronisation without sleeps.
//!
//! The cases never wait for *time* to make something happen. They wait for
//! *events*:
//!
//! * **Connectivity** is established by [`barrier`]: the sender sends fresh
//!   markers until every receiver got one, then every receiver is drained up
//!   to the last marker, so the channels are quiet afterwards. Anything but
//!   a marker arriving meanwhile fails the case (an echo, a replay, a leak).
//! * **Absence is proven by causality** where the transport orders things:
//!   when a marker sent *after* the event in question is the first thing a
//!   channel receives, nothing from that event was delivered before it.
//! * Where causality is impossible (for example Iroh gossip gives no order
//!   between two topics, so a leak into another app instance could arrive
//!   after a marker on the right one), [`expect_nothing`] waits a documented
//!   quiet window, [`QUIET`]. This is the only place the suite waits for
//!   time to pass, and it only ever makes a case *stricter*: a leak that
//!   arrives later than [`QUIET`] goes unseen, it never fails a correct
//!   backend.
//!
//! [`PATIENCE`] is a hang guard: everything that should happen promptly on
//! a local transport happens long before it; reaching it is a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::harness::{Channel, Received, SendFailure};

/// Upper bound for anything that should happen promptly on a local
/// transport. Only a hang guard: cases wait for events, never for time.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The hang guard for the first barrier after a transport restart: the
/// peers' reconnection (back-off, login, re-joining) comes first. Generous
/// because a login attempt that reaches a server still starting up waits
/// for the client's connect timeout (20 s in the XMPP harness) before the
/// next one; a passing run never waits for it.
pub const RESTART_PATIENCE: Duration = Duration::from_secs(120);

/// How long [`expect_nothing`] watches a channel to show that nothing
/// arrives, where no causal marker can prove it (see the module docs).
pub const QUIET: Duration = Duration::from_millis(500);

/// How long a barrier round waits for its marker before sending the next
/// one. A missed round only means another round; it is not a failure.
const ROUND: Duration = Duration::from_millis(250);

/// The prefix of every barrier marker. It starts with a NUL byte so that no
/// payload a case sends can be mistaken for one.
const MARKER_PREFIX: &[u8] = b"\0spec-tests-barrier-";

/// Makes every barrier's markers unique, so a marker from an earlier
/// barrier can never end a later one.
static BARRIER_ID: AtomicU64 = AtomicU64::new(0);

/// A readable rendering of a payload for failure messages.
pub fn show(data: &[u8]) -> String {
    if data.is_empty() {
        return "<empty payload>".to_owned();
    }
    if data.len() <= 48 && data.iter().all(|b| (0x20..0x7f).contains(b)) {
        return format!("{:?}", String::from_utf8_lossy(data));
    }
    let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("<{} bytes: {}…>", data.len(), head.join(" "))
}

/// A readable rendering of a receive result for failure messages.
pub fn show_received(r: &Received) -> String {
    match r {
        Received::Payload(d) => format!("payload {}", show(d)),
        Received::Lagged(n) => format!("a Lagged report ({n} dropped)"),
        Received::Timeout => format!("nothing within {PATIENCE:?}"),
        Received::Closed => "the end of the channel (Closed)".to_owned(),
    }
}

fn is_marker(data: &[u8]) -> bool {
    data.starts_with(MARKER_PREFIX)
}

/// The next payload on `ch` (waiting at most [`PATIENCE`]); anything else
/// is an error.
pub async fn next_payload<C: Channel>(ch: &mut C, what: &str) -> Result<Vec<u8>, String> {
    match ch.recv(PATIENCE).await {
        Received::Payload(d) => Ok(d),
        other => Err(format!(
            "{what}: expected a payload, got {}",
            show_received(&other)
        )),
    }
}

/// The next item on `ch` must be the payload `want`.
pub async fn expect_payload<C: Channel>(ch: &mut C, want: &[u8], what: &str) -> Result<(), String> {
    let got = next_payload(ch, what).await?;
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected payload {}, got {}",
            show(want),
            show(&got)
        ))
    }
}

/// Nothing may arrive on `ch` for `quiet` (normally [`QUIET`]). Used only
/// where causality cannot prove absence (see the module docs).
pub async fn expect_nothing<C: Channel>(
    ch: &mut C,
    quiet: Duration,
    what: &str,
) -> Result<(), String> {
    match ch.recv(quiet).await {
        Received::Timeout => Ok(()),
        other => Err(format!(
            "{what}: expected nothing, got {}",
            show_received(&other)
        )),
    }
}

/// `send` must succeed.
pub async fn send<C: Channel>(ch: &mut C, data: &[u8], what: &str) -> Result<(), String> {
    ch.send(data)
        .await
        .map_err(|e| format!("{what}: send of {} failed: {e:?}", show(data)))
}

/// Establishes connectivity from `sender` to every receiver ("send until
/// received"): sends a fresh marker each round until each receiver has
/// seen one, then drains every receiver up to the last marker, so that the
/// channels are quiet afterwards.
///
/// Any payload other than a marker, or a `Lagged` report, arriving at a
/// receiver meanwhile fails. A send that fails for a transient reason
/// ([`SendFailure::Other`], for example "disconnected" during a restart) is
/// retried in the next round; `TooLarge` or `Left` fail at once. Gives up
/// after [`PATIENCE`].
pub async fn barrier<C: Channel>(sender: &mut C, receivers: &mut [&mut C]) -> Result<(), String> {
    barrier_within(sender, receivers, PATIENCE).await
}

/// [`barrier`] with another hang guard than [`PATIENCE`].
pub async fn barrier_within<C: Channel>(
    sender: &mut C,
    receivers: &mut [&mut C],
    patience: Duration,
) -> Result<(), String> {
    let id = BARRIER_ID.fetch_add(1, Ordering::Relaxed);
    let marker = |round: u32| {
        let mut m = MARKER_PREFIX.to_vec();
        m.extend_from_slice(format!("{id}-{round}").as_bytes());
        m
    };
    let deadline = Instant::now() + patience;
    let mut round = 0u32;
    let mut last_sent: Option<Vec<u8>> = None;
    // The last marker each receiver saw.
    let mut seen: Vec<Option<Vec<u8>>> = vec![None; receivers.len()];
    let mut last_send_error = None;
    while seen.iter().any(Option::is_none) {
        if Instant::now() >= deadline {
            let missing: Vec<usize> = (0..seen.len()).filter(|i| seen[*i].is_none()).collect();
            return Err(format!(
                "barrier: receivers {missing:?} (by position) got no marker within {patience:?} \
                 ({round} rounds; last send error: {last_send_error:?})"
            ));
        }
        round += 1;
        let m = marker(round);
        match sender.send(&m).await {
            Ok(()) => last_sent = Some(m),
            Err(e @ (SendFailure::TooLarge | SendFailure::Left)) => {
                return Err(format!("barrier: sending a marker failed: {e:?}"))
            }
            // Transient (not connected again yet after a restart, …): the
            // next round tries again; the receivers' waits pace the rounds.
            Err(e) => last_send_error = Some(e),
        }
        let mut waited = false;
        for (i, r) in receivers.iter_mut().enumerate() {
            if seen[i].is_some() {
                continue;
            }
            waited = true;
            match r.recv(ROUND).await {
                Received::Payload(d) if is_marker(&d) => seen[i] = Some(d),
                Received::Timeout => {}
                other => {
                    return Err(format!(
                        "barrier: receiver {i} (by position) got {} instead of a marker",
                        show_received(&other)
                    ))
                }
            }
        }
        if !waited {
            break;
        }
    }
    // Drain the rounds still in flight, up to the last marker sent.
    let Some(last) = last_sent else {
        return Ok(()); // no receivers
    };
    for (i, (r, seen)) in receivers.iter_mut().zip(seen).enumerate() {
        if seen.as_deref() == Some(&last[..]) {
            continue;
        }
        loop {
            let d = next_payload(*r, &format!("barrier drain at receiver {i}")).await?;
            if !is_marker(&d) {
                return Err(format!(
                    "barrier: receiver {i} (by position) got payload {} instead of a marker",
                    show(&d)
                ));
            }
            if d == last {
                break;
            }
        }
    }
    Ok(())
}

/// [`barrier`] in both directions between two channels.
pub async fn connect_pair<C: Channel>(a: &mut C, b: &mut C) -> Result<(), String> {
    barrier(a, &mut [&mut *b]).await?;
    barrier(b, &mut [&mut *a]).await
}
