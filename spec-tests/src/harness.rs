//! What a backend implements to run the suite.
//!
//! The suite speaks only of the webxdc contract: chats with members, app
//! instances, channels that send, receive and leave. A backend maps these
//! onto its transport (an XMPP room and accounts, an Iroh gossip topic, an
//! in-memory bus) in a few lines.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Differences between backends that the webxdc specification allows.
/// A flag only ever *skips* a case whose premise the backend lacks; it
/// never relaxes what a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// A member can have a second device that joins the same chat
    /// ([`Harness::add_device`]).
    pub multi_device: bool,
    /// The transport can be restarted under connected peers
    /// ([`Harness::restart`]).
    pub restart: bool,
}

impl Capabilities {
    /// No optional capability.
    pub const NONE: Capabilities = Capabilities {
        multi_device: false,
        restart: false,
    };
    /// Every optional capability.
    pub const ALL: Capabilities = Capabilities {
        multi_device: true,
        restart: true,
    };
}

/// A harness failure that is not a contract outcome (the test server did
/// not start, an account could not be made): the case fails with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

impl HarnessError {
    /// Wraps any displayable error.
    pub fn new(e: impl fmt::Display) -> Self {
        HarnessError(e.to_string())
    }
}

/// Why a join failed, as far as the contract cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinFailure {
    /// The member already has an unleft channel for this instance in this
    /// chat (rule 1: a second join throws).
    AlreadyJoined,
    /// Anything else.
    Other(String),
}

/// Why a send failed, as far as the contract cares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendFailure {
    /// Over 128000 bytes (rule 3).
    TooLarge,
    /// The channel was left (rule 4).
    Left,
    /// Anything else (disconnected, …).
    Other(String),
}

/// What one receive attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A payload from another peer.
    Payload(Vec<u8>),
    /// The backend reports that this many payloads were dropped because
    /// the reader was too slow (rule 2: overflow is reported).
    Lagged(u64),
    /// Nothing arrived within the timeout.
    Timeout,
    /// The channel is left; nothing will arrive.
    Closed,
}

/// One joined realtime channel of one peer.
pub trait Channel: Send {
    /// `send()`: deliver `data` to the other joined peers.
    fn send(&mut self, data: &[u8]) -> impl Future<Output = Result<(), SendFailure>> + Send;

    /// The next item, waiting at most `timeout`. Backend notices that are
    /// not about data (connection state) are skipped by the backend.
    fn recv(&mut self, timeout: Duration) -> impl Future<Output = Received> + Send;

    /// `leave()`: stop receiving; later sends fail. Idempotent.
    fn leave(&mut self) -> impl Future<Output = ()> + Send;
}

/// Identifies a member (a device of a participant) in a chat made by a
/// harness. Members of a chat are numbered from 0; [`Harness::add_device`]
/// returns new numbers.
pub type Member = usize;

/// A backend under test. Each case gets a fresh harness.
pub trait Harness: Send {
    /// A chat made by [`new_chat`](Harness::new_chat).
    type Chat: Send + Sync;
    /// A joined channel.
    type Channel: Channel;

    /// Short name for reports ("memory", "xmpp-prosody", …).
    fn name(&self) -> String;

    /// What the backend can do beyond the mandatory contract.
    fn capabilities(&self) -> Capabilities;

    /// A new chat with `members` members (0..members), all able to join
    /// any app instance in it.
    fn new_chat(
        &mut self,
        members: usize,
    ) -> impl Future<Output = Result<Self::Chat, HarnessError>> + Send;

    /// Another chat with the same participants as `chat` (the same member
    /// numbers mean the same participants), for isolation between chats.
    fn other_chat(
        &mut self,
        chat: &Self::Chat,
    ) -> impl Future<Output = Result<Self::Chat, HarnessError>> + Send;

    /// `joinRealtimeChannel()` by `member` for the app instance named
    /// `instance` in `chat`. The same `instance` name in two chats denotes
    /// two app instances with the same id.
    fn join(
        &mut self,
        chat: &Self::Chat,
        member: Member,
        instance: &str,
    ) -> impl Future<Output = Result<Result<Self::Channel, JoinFailure>, HarnessError>> + Send;

    /// A second device of `member`'s participant, in `chat` (capability
    /// `multi_device`). Returns the new device's member number.
    fn add_device(
        &mut self,
        chat: &Self::Chat,
        member: Member,
    ) -> impl Future<Output = Result<Member, HarnessError>> + Send;

    /// Restarts the transport under the connected peers (capability
    /// `restart`): for a server-based backend, the server process. Returns
    /// once the restart was initiated; cases then wait for delivery.
    fn restart(&mut self) -> impl Future<Output = Result<(), HarnessError>> + Send;
}
