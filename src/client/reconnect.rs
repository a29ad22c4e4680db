//! The reconnect policy: when and how often the client logs in again.
//!
//! One back-off serves both the first login (bounded by the connect
//! timeout, so that a server that is still starting is waited for) and the
//! logins after a connection loss (unbounded, each attempt reported to the
//! client's task so that the application sees every failure).
//!
//! tokio-xmpp's stanza stream asks for a new connection through a callback;
//! [`Reconnector::into_callback`] is ours.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::Timeouts;

use super::login::{login, LoginError};

/// The delays between login attempts: 50 ms, doubling up to 5 s.
///
/// Short at first because a loopback or LAN server comes back within a
/// second of a restart; capped low because a realtime channel is useless
/// while down.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }
}

/// A failed reconnection attempt, reported to the client's task.
#[derive(Debug)]
pub(crate) struct AttemptFailed {
    pub attempt: u32,
    pub error: String,
}

/// The first login: connection errors are retried with [`Backoff`] until
/// `timeout`, refused credentials end it at once.
pub(crate) async fn first_login<C: ServerConnector>(
    connector: &C,
    identity: &Jid,
    password: &str,
    timeouts: Timeouts,
    timeout: Duration,
) -> Result<Connection, LoginError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Backoff::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match login(connector, identity, password, timeouts, left).await {
            Ok(conn) => return Ok(conn),
            Err(LoginError::Auth(e)) => return Err(LoginError::Auth(e)),
            Err(LoginError::Transport(e)) => {
                let delay = backoff.next_delay();
                if tokio::time::Instant::now() + delay >= deadline {
                    return Err(LoginError::Transport(e));
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Everything a reconnection needs.
///
/// The stanza stream resumes the lost session (stream management) with
/// every new connection until one resumption succeeds or is refused in a
/// way it understands. A refusal it cannot parse (ejabberd's
/// `<failed xmlns='urn:xmpp:sm:3'/>` without `h` after a restart, which
/// XEP-0198 allows and xmpp-parsers 0.23 rejects) breaks the connection
/// instead, and the stream tries the same resumption again, for ever. So
/// when a connection we handed over broke before any session was bound or
/// resumed on it ([`Reconnector::session_up`] still false), the next one is
/// handed over without the stream management feature: the stream drops
/// the old session and binds a new one (rooms are then entered again, as
/// after any reconnection that could not resume). Connections that keep
/// breaking before a session are handed over after a growing delay (the
/// same [`Backoff`]), so that no server is hammered by a tight loop; so
/// are connections whose session keeps ending within [`SHORT_SESSION`]
/// (a server that drops every session it binds).
pub(crate) struct Reconnector<C> {
    pub connector: C,
    pub identity: Jid,
    pub password: String,
    pub timeouts: Timeouts,
    pub attempt_timeout: Duration,
    /// The connection from the first login, handed over on the first call.
    pub first: Arc<Mutex<Option<Connection>>>,
    pub reports: mpsc::Sender<AttemptFailed>,
    pub shutdown: Arc<AtomicBool>,
    /// Set by the client's task when a session is bound or resumed on the
    /// connection handed over last; cleared at each hand-over.
    pub session_up: Arc<AtomicBool>,
    /// Connections handed over in a row that broke before a session.
    pub broken_in_a_row: AtomicU32,
    /// When the last connection was handed over.
    pub handed_at: Mutex<Option<Instant>>,
    /// Connections in a row whose session ended within [`SHORT_SESSION`]:
    /// a server that binds a session and then drops it each time (a stream
    /// error at once, a broken proxy) is not hammered either.
    pub short_in_a_row: AtomicU32,
}

/// A session that ends sooner than this after its connection was handed
/// over counts as short-lived (see [`Reconnector::short_in_a_row`]).
pub(crate) const SHORT_SESSION: Duration = Duration::from_secs(10);

impl<C: ServerConnector + Sync> Reconnector<C> {
    /// The callback tokio-xmpp's stanza stream calls whenever it needs a
    /// new connection.
    pub(crate) fn into_callback(
        self,
    ) -> Box<dyn FnMut(Option<String>, oneshot::Sender<Connection>) + Send + 'static> {
        let this = Arc::new(self);
        Box::new(move |_location, slot| {
            let first = this.first.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(conn) = first {
                *this.handed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                // Err only if the stream is already gone: nothing to do.
                let _ = slot.send(conn);
                return;
            }
            // Whether the last connection got as far as a session; the
            // answer is for this hand-over alone.
            let lasted = this
                .handed_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .map(|t| t.elapsed());
            let broken = if this.session_up.swap(false, Ordering::AcqRel) {
                this.broken_in_a_row.store(0, Ordering::Release);
                0
            } else {
                this.broken_in_a_row.fetch_add(1, Ordering::AcqRel) + 1
            };
            let short = if lasted.is_some_and(|d| d < SHORT_SESSION) {
                this.short_in_a_row.fetch_add(1, Ordering::AcqRel) + 1
            } else {
                this.short_in_a_row.store(0, Ordering::Release);
                0
            };
            let this = this.clone();
            tokio::spawn(async move { this.retry(slot, broken, short).await });
        })
    }

    /// Logs in until it works and hands the connection to the stream.
    /// After `broken` connections in a row that broke before a session, it
    /// first waits, and hands the next one over without stream management
    /// (see the type's docs).
    /// After `short` short-lived sessions in a row it waits the same way.
    async fn retry(&self, slot: oneshot::Sender<Connection>, broken: u32, short: u32) {
        let mut backoff = Backoff::new();
        let in_a_row = broken.max(short);
        if in_a_row > 1 {
            let mut wait = Backoff::new();
            let delay = (1..in_a_row).map(|_| wait.next_delay()).last();
            tokio::time::sleep(delay.unwrap_or_default()).await;
        }
        let mut attempt = 0u32;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                // Dropping the slot would make the stream's worker panic
                // ("unable to handle reconnect request"); the client is
                // shutting down and has dropped the stream, so the worker
                // is only waiting for this slot. Leaving it unanswered lets
                // that task idle until the runtime ends, which is harmless.
                std::mem::forget(slot);
                return;
            }
            attempt += 1;
            match login(
                &self.connector,
                &self.identity,
                &self.password,
                self.timeouts,
                self.attempt_timeout,
            )
            .await
            {
                Ok(mut conn) => {
                    if broken > 0 {
                        tracing::debug!(
                            "the last connection broke before a session: binding a new one"
                        );
                        conn.features.stream_management = None;
                    }
                    *self.handed_at.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now());
                    let _ = slot.send(conn);
                    return;
                }
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "reconnect attempt failed");
                    // A full report queue only means nobody is reading
                    // reports fast enough; the next one carries the count.
                    let _ = self.reports.try_send(AttemptFailed {
                        attempt,
                        error: e.to_string(),
                    });
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..10).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
    }
}
