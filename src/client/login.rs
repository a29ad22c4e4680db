//! Logging in, and logging in again after a connection loss.
//!
//! tokio-xmpp's own reconnect loop retries a wrong password forever and
//! never reports why it fails. We supply the stream's connector ourselves:
//! the first login runs under the connect timeout and its error is returned
//! to the caller (a wrong password is final at once); later logins report
//! every failed attempt as an event and back off up to a bounded delay.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sasl::common::Credentials;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts};

/// First delay between reconnection attempts; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between reconnection attempts. Short, because a realtime
/// channel is useless while down and a loopback or LAN server comes back
/// quickly after a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why one login attempt failed.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// Credentials refused: retrying cannot help.
    Auth(String),
    /// Anything else (refused, reset, TLS, DNS, timeout): worth retrying.
    Transport(String),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Auth(e) => write!(f, "authentication failed: {e}"),
            LoginError::Transport(e) => f.write_str(e),
        }
    }
}

/// A failed reconnection attempt, reported to the client's task.
#[derive(Debug)]
pub(crate) struct AttemptFailed {
    pub attempt: u32,
    pub error: String,
}

/// Connects, secures (per the connector), authenticates and returns a
/// stream ready for resource binding, within `timeout`.
pub(crate) async fn login<C: ServerConnector>(
    connector: &C,
    identity: &Jid,
    password: &str,
    timeouts: Timeouts,
    timeout: Duration,
) -> Result<Connection, LoginError> {
    match tokio::time::timeout(
        timeout,
        login_inner(connector, identity, password, timeouts),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(LoginError::Transport(format!(
            "no answer within {timeout:?}"
        ))),
    }
}

async fn login_inner<C: ServerConnector>(
    connector: &C,
    identity: &Jid,
    password: &str,
    timeouts: Timeouts,
) -> Result<Connection, LoginError> {
    let transport = |e: tokio_xmpp::Error| LoginError::Transport(e.to_string());
    let username = identity
        .node()
        .ok_or_else(|| LoginError::Auth("the JID has no local part".into()))?
        .as_str()
        .to_owned();
    let (pending, channel_binding) = connector
        .connect(identity, xmpp_parsers::ns::JABBER_CLIENT, timeouts)
        .await
        .map_err(transport)?;
    let (features, stream) = pending
        .recv_features()
        .await
        .map_err(|e| LoginError::Transport(e.to_string()))?;
    let creds = Credentials::default()
        .with_username(username)
        .with_password(password)
        .with_channel_binding(channel_binding);
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
        .await
        .map_err(|e| match e {
            tokio_xmpp::Error::Auth(a) => LoginError::Auth(a.to_string()),
            other => transport(other),
        })?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(Cow::Borrowed(identity.domain().as_str())),
            from: None,
            id: None,
        })
        .await
        .map_err(|e| LoginError::Transport(e.to_string()))?;
    let (features, stream) = stream
        .recv_features()
        .await
        .map_err(|e| LoginError::Transport(e.to_string()))?;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: identity.clone(),
    })
}

/// Everything a reconnection needs.
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
}

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
                // Err only if the stream is already gone: nothing to do.
                let _ = slot.send(conn);
                return;
            }
            let this = this.clone();
            tokio::spawn(async move { this.retry(slot).await });
        })
    }

    async fn retry(&self, slot: oneshot::Sender<Connection>) {
        let mut delay = FIRST_BACKOFF;
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
                Ok(conn) => {
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
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}
