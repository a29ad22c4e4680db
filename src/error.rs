//! Typed errors, one enum per operation, each variant a cause.

use std::time::Duration;

use jid::BareJid;

use crate::wire::{ErrorCondition, WireError, MAX_PAYLOAD, MAX_THREAD};

/// Why `join_realtime_channel` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// This peer already has a channel for this chat and app instance that
    /// was not left (the webxdc spec says a second join throws).
    #[error("already joined this app instance in this chat; leave the other channel first")]
    AlreadyJoined,
    /// The instance id (the webxdc message's thread) cannot be used on the
    /// wire: empty (or only whitespace), or containing characters XML
    /// cannot carry (control characters other than tab and line breaks,
    /// U+FFFE, U+FFFF).
    #[error("invalid app instance id (thread): empty, or a character XML cannot carry")]
    InvalidThread,
    /// The instance id is longer than [`MAX_THREAD`] bytes (it travels in
    /// every stanza, beside payloads of up to 128000 bytes, within the
    /// servers' stanza size limits).
    #[error("app instance id (thread) of {len} bytes exceeds the limit of {max} bytes", max = MAX_THREAD)]
    ThreadTooLong {
        /// Its length in bytes (UTF-8).
        len: usize,
    },
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}

impl JoinError {
    /// The error for a thread that [`validate_thread`](crate::wire::validate_thread)
    /// refused.
    pub(crate) fn thread(e: WireError) -> Self {
        match e {
            WireError::ThreadTooLong { len } => Self::ThreadTooLong { len },
            _ => Self::InvalidThread,
        }
    }
}

/// Why `send` failed. Nothing was put on the network in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The payload is larger than the 128000 bytes the webxdc API allows.
    #[error("payload of {size} bytes exceeds the limit of {max} bytes", max = MAX_PAYLOAD)]
    TooLarge {
        /// The payload size in bytes.
        size: usize,
    },
    /// The channel was left (or never existed): the spec makes a left
    /// channel invalid.
    #[error("the channel was left")]
    Left,
    /// There is no connection to the server right now (it is being
    /// re-established); the payload was not queued.
    #[error("not connected to the server")]
    Disconnected,
    /// The group chat's room is not joined (yet, or any more: the server
    /// removed us and a re-join is pending).
    #[error("room {0} is not joined")]
    RoomNotJoined(BareJid),
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server refused the credentials (wrong password, unknown account).
    /// Not retried: retrying cannot fix it.
    #[error("authentication failed: {0}")]
    Auth(AuthFailure),
    /// The server could not be reached or the connection failed (refused,
    /// DNS, TLS handshake or certificate) until the connect timeout.
    #[error("could not connect within {timeout:?}: {last_error}")]
    Unreachable {
        /// The connect timeout that expired.
        timeout: Duration,
        /// The last error seen while trying.
        last_error: String,
    },
    /// The configuration cannot work (for example plaintext to a
    /// non-loopback address).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Why entering a group chat failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The room refused us: banned ([`ErrorCondition::Forbidden`]),
    /// members-only ([`ErrorCondition::RegistrationRequired`]), nick taken
    /// ([`ErrorCondition::Conflict`]), …
    #[error("room {room} refused the join: {condition}")]
    Refused {
        /// The room.
        room: BareJid,
        /// Why.
        condition: ErrorCondition,
    },
    /// The address cannot name a room: it is a domain only (a room's JID
    /// is `room@service`), or it is on our own server's domain, which holds
    /// accounts, never rooms (a MUC service is a host of its own). Nothing
    /// was sent.
    #[error("{0} is not a room address (a room is room@muc-service)")]
    NotARoom(BareJid),
    /// No answer from the room within the timeout: also what an address on
    /// another server without a MUC service gives (a presence to an account
    /// that is not there gets no answer, RFC 6121 §4.3).
    #[error("no answer from room {room} within {timeout:?}")]
    Timeout {
        /// The room.
        room: BareJid,
        /// How long we waited.
        timeout: Duration,
    },
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}

/// Why the server refused to log us in (RFC 6120 §6.5 SASL failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Wrong password or unknown account (`not-authorized`).
    #[error("wrong password or unknown account")]
    NotAuthorized,
    /// The account is disabled (`account-disabled`).
    #[error("the account is disabled")]
    AccountDisabled,
    /// The password has expired (`credentials-expired`).
    #[error("the password has expired")]
    CredentialsExpired,
    /// The server offers no mechanism we support (we speak SCRAM-SHA-1,
    /// SCRAM-SHA-256 and PLAIN).
    #[error("the server offers no supported authentication mechanism")]
    NoMechanism,
    /// Anything else, as the server or the SASL layer described it.
    #[error("{0}")]
    Other(String),
}

/// Why sending a status update, or reading the archived ones, failed.
/// Nothing was put on the network in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The update is larger than the webxdc API allows
    /// (`sendUpdateMaxSize`, 128000 bytes), or would not fit one stanza.
    #[error("status update of {size} bytes is too large")]
    TooLarge {
        /// Its size in bytes (as JSON text, or as escaped XML).
        size: usize,
    },
    /// The update's payload is not JSON text.
    #[error("status update payload is not JSON: {0}")]
    NotJson(String),
    /// The instance id (thread) cannot be used on the wire: empty, or a
    /// character XML cannot carry (as [`JoinError::InvalidThread`]).
    #[error("invalid app instance id (thread): empty, or a character XML cannot carry")]
    InvalidThread,
    /// The instance id is longer than [`MAX_THREAD`] bytes (as
    /// [`JoinError::ThreadTooLong`]).
    #[error("app instance id (thread) of {len} bytes exceeds the limit of {max} bytes", max = MAX_THREAD)]
    ThreadTooLong {
        /// Its length in bytes (UTF-8).
        len: usize,
    },
    /// There is no connection to the server right now.
    #[error("not connected to the server")]
    Disconnected,
    /// The room is not joined (yet, or any more).
    #[error("room {0} is not joined")]
    RoomNotJoined(BareJid),
    /// Too many archive reads are under way at once.
    #[error("too many archive queries in flight")]
    Busy,
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}

impl UpdateError {
    /// The error for a thread that [`validate_thread`](crate::wire::validate_thread)
    /// refused.
    pub(crate) fn thread(e: WireError) -> Self {
        match e {
            WireError::ThreadTooLong { len } => Self::ThreadTooLong { len },
            _ => Self::InvalidThread,
        }
    }
}

/// Why an upload exchange (service discovery, slot request) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// There is no connection to the server right now (or it dropped
    /// before the answer came).
    #[error("not connected to the server")]
    Disconnected,
    /// The server offers no HTTP upload (XEP-0363).
    #[error("the server offers no HTTP file upload")]
    NoService,
    /// The server or the upload service refused.
    #[error("the server refused: {0}")]
    Refused(crate::wire::ErrorCondition),
    /// The file cannot be asked for (no name, too large for the service).
    #[error("cannot upload this file: {0}")]
    BadFile(String),
    /// Too many upload exchanges are under way at once.
    #[error("too many uploads in flight")]
    Busy,
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}
