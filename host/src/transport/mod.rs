//! What the host needs from a chat, as a small trait: the realtime channel
//! (join, send, receive, leave) and status updates (send, and a feed that
//! first yields the past updates, then live ones).
//!
//! The bridge only ever talks to a [`Transport`], so the same page runs
//! over XMPP ([`xmpp::XmppTransport`], the library's client) or over
//! anything else that implements it ([`memory::MemoryChat`], used by the
//! fast tests; an Iroh backend could be another). That is freedom of exit
//! as an app sees it: the app does not change.
//!
//! One [`Transport`] value stands for one local user in one chat.

pub mod memory;
pub mod xmpp;

use std::pin::Pin;

use futures::future::BoxFuture;
use futures::Stream;

/// The largest realtime payload, in bytes (the webxdc API's limit; the
/// library's constant, so that every transport and the page agree).
pub use webxdc_realtime_xmpp::MAX_PAYLOAD;

/// The largest status update payload (`sendUpdateMaxSize`), in bytes of
/// JSON text (the library's constant).
pub use webxdc_realtime_xmpp::wire::update::MAX_UPDATE_SIZE;

/// One status update, as an app passes it to `sendUpdate()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The `payload`, as JSON text.
    pub payload: String,
    /// `info`: a line for the chat.
    pub info: Option<String>,
    /// `document`: the name of the document the app edits.
    pub document: Option<String>,
    /// `summary`: a short status of the app.
    pub summary: Option<String>,
}

/// Why a transport operation failed. The messages of the realtime cases
/// are the library's own, so a page sees the words a Rust caller sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A realtime payload over [`MAX_PAYLOAD`] bytes; nothing was sent.
    #[error("payload of {size} bytes exceeds the limit of {max} bytes", max = MAX_PAYLOAD)]
    TooLarge {
        /// The payload's size.
        size: usize,
    },
    /// A second join of the same instance without leaving the first.
    #[error("already joined this app instance in this chat; leave the other channel first")]
    AlreadyJoined,
    /// The channel was left.
    #[error("the channel was left")]
    Left,
    /// A status update the transport cannot carry (too large, not JSON).
    #[error("invalid status update: {0}")]
    BadUpdate(String),
    /// The chat cannot be reached now (disconnected, room not joined,
    /// shut down); the text says which.
    #[error("{0}")]
    Unavailable(String),
}

/// What a realtime channel receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RealtimeEvent {
    /// A payload from another peer, exact bytes.
    Data(Vec<u8>),
    /// This many payloads were dropped because the reader was too slow.
    Lagged(u64),
    /// Something the page may want to know (disconnected, reconnected,
    /// removed from the room), in words.
    Notice(String),
}

/// What a status update feed yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateEvent {
    /// An update, past or live, the sender's own included.
    Update(Update),
    /// Every past update has been given; live ones follow. `complete` is
    /// false when the store could not be read in full (the reason says
    /// why).
    PastEnd {
        /// Whether every past update was read.
        complete: bool,
        /// Why not, if not.
        reason: Option<String>,
    },
    /// This many updates were lost to a slow reader.
    Missed(u64),
}

/// A feed of status updates: past ones, then [`UpdateEvent::PastEnd`],
/// then live ones. It ends (`None`) when the chat goes away.
pub type UpdateFeed = Pin<Box<dyn Stream<Item = UpdateEvent> + Send>>;

/// One joined realtime channel.
pub trait Realtime: Send {
    /// Sends `data` to every other member who joined the same instance.
    /// Errors before anything is sent ([`TransportError::TooLarge`],
    /// [`TransportError::Left`]).
    fn send<'a>(&'a self, data: &'a [u8]) -> BoxFuture<'a, Result<(), TransportError>>;
    /// The next event; `None` once left (or the chat is gone).
    fn recv(&mut self) -> BoxFuture<'_, Option<RealtimeEvent>>;
    /// Leaves: delivery stops at once; idempotent.
    fn leave(&mut self);
}

/// One local user in one chat.
pub trait Transport: Send + Sync + 'static {
    /// `selfAddr` for the app.
    fn self_addr(&self) -> String;
    /// `selfName` for the app.
    fn self_name(&self) -> String;
    /// Joins the realtime channel of app instance `instance`.
    fn join(&self, instance: &str) -> Result<Box<dyn Realtime>, TransportError>;
    /// Sends a status update for `instance` to every member, us included.
    fn send_update<'a>(
        &'a self,
        instance: &'a str,
        update: &'a Update,
    ) -> BoxFuture<'a, Result<(), TransportError>>;
    /// The status updates of `instance`: past ones, then live ones.
    fn updates<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<UpdateFeed, TransportError>>;
}
