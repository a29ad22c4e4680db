//! One login attempt: connect, secure, authenticate, restart the stream.
//!
//! tokio-xmpp's own login retries a wrong password forever and never
//! reports why it fails, so we run each attempt ourselves and classify its
//! failure: refused credentials are final, everything else is worth
//! retrying (the policy for that is in `reconnect.rs`).

use std::borrow::Cow;
use std::time::Duration;

use sasl::common::Credentials;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::AuthError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{StreamHeader, Timeouts};
use xmpp_parsers::sasl::DefinedCondition;

use crate::error::AuthFailure;

/// Why one login attempt failed.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// Credentials refused: retrying cannot help.
    Auth(AuthFailure),
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
        .ok_or_else(|| LoginError::Auth(AuthFailure::Other("the JID has no local part".into())))?
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
            tokio_xmpp::Error::Auth(a) => LoginError::Auth(auth_failure(a)),
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

fn auth_failure(e: AuthError) -> AuthFailure {
    match e {
        AuthError::Fail(DefinedCondition::NotAuthorized) => AuthFailure::NotAuthorized,
        AuthError::Fail(DefinedCondition::AccountDisabled) => AuthFailure::AccountDisabled,
        AuthError::Fail(DefinedCondition::CredentialsExpired) => AuthFailure::CredentialsExpired,
        AuthError::NoMechanism => AuthFailure::NoMechanism,
        other => AuthFailure::Other(other.to_string()),
    }
}
