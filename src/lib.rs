//! The webxdc realtime channel (`joinRealtimeChannel()`) over XMPP.
//!
//! webxdc apps get one realtime API: join a channel, send byte payloads of
//! at most 128000 bytes to the other members of the chat who run the same
//! app instance, receive theirs, leave. This crate carries that channel over
//! XMPP, each payload a `<no-store/>` message in the chat (a MUC room or a
//! 1:1 chat), wire-compatible with Cheogram.
//!
//! # Layout: where IO stops
//!
//! ```text
//!  embedding messenger ──stanzas──▶ ┌──────────────┐ ──deliveries, events──▶ app
//!  (own XMPP connection)  ◀──────── │ engine       │ ◀──join/send/leave───── app
//!                                   │ (sans-IO)    │
//!  client (one tokio task) ◀──────▶ └──────────────┘
//! ```
//!
//! * [`wire`]: everything XMPP-shaped, as pure functions: the realtime frame
//!   ([`wire::frame`]), status updates ([`wire::update`]), the room's
//!   presences ([`wire::muc`]) and archive queries ([`wire::mam`]). The
//!   format is specified in `docs/wire-format.md`.
//! * [`engine`]: the contract as a state machine with no IO, no clock, no
//!   randomness of its own and no runtime: channels per (chat, instance),
//!   echo filtering, isolation, privacy, the size limit, room membership
//!   across reconnects, status updates and archive paging. **One input**
//!   ([`Engine::handle_stanza`], with text and element wrappers) and **one
//!   place to poll** ([`Engine::poll`]: stanzas to send, events, every
//!   channel's deliveries). A messenger that already has an XMPP connection
//!   uses it alone.
//! * [`inbox`]: the bounded per-channel receive queue; overflow is reported
//!   as [`Delivery::Lagged`], never silent and never unbounded.
//! * [`client`]: the IO side. One tokio task does all IO; the engine is
//!   shared with the handles behind a mutex, and handles wake the task
//!   through a bounded queue (see the module docs for why). [`Client`],
//!   [`GroupChat`]/[`DirectChat`] and [`Channel`] are cheap handles. The
//!   reconnect policy is `client/reconnect.rs`; `client/connector.rs`
//!   bounds what a server can make us hold (stanza size, depth, no DTD) and
//!   names why a connection ended ([`DisconnectCause`]). `send().await`
//!   waits while 64 payloads are queued, which go out as the server
//!   confirms what it has (XEP-0198: at most 64 stanzas and about 256 KiB
//!   unconfirmed), so a sender cannot outrun it; what a lost session never
//!   confirmed is reported ([`ClientEvent::Unconfirmed`]). The channels
//!   take turns (`client/schedule.rs`): a channel's payloads keep their
//!   order, and a small payload is not stuck behind another channel's
//!   file sent in full-size chunks.
//!
//! The reliability campaign (`reliability/`, figures in
//! `docs/reliability.md`) tries all of this with hostile stanzas, load,
//! floods, faults and bad API input against real servers.
//! * [`error`]: one `#[non_exhaustive]` error enum per operation, with typed
//!   causes ([`ErrorCondition`], [`AuthFailure`], [`RemovalReason`]).
//!
//! # Example
//!
//! ```no_run
//! use webxdc_realtime_xmpp::{Client, Config, Delivery};
//! use futures::StreamExt;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // STARTTLS with the system's roots; the server is found from the JID.
//! let client = Client::connect(Config::new("alice@example.org".parse()?, "secret")).await?;
//! let chat = client.group("team@conference.example.org".parse()?).await?;
//! let mut channel = chat.join_realtime_channel("thread-of-the-webxdc-message")?;
//! channel.send(b"hello").await?;
//! while let Some(item) = channel.next().await {
//!     match item {
//!         Delivery::Payload(p) => println!("{} sent {} bytes", p.from, p.data.len()),
//!         Delivery::Lagged { dropped } => println!("missed {dropped} payloads"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! channel.leave();
//! client.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod engine;
pub mod error;
pub mod inbox;
pub mod wire;

pub use client::{
    Channel, Client, ClientEvent, Config, DirectChat, DisconnectCause, Events, GroupChat,
    UpdateItem, Updates,
};
pub use engine::{
    ArchiveOutcome, ChannelId, Chat, Engine, EngineConfig, EngineEvent, Handled, Output, Rejection,
    RoomState, UploadQuery,
};
pub use error::{
    AuthFailure, ConnectError, GroupError, JoinError, SendError, UpdateError, UploadError,
};
pub use inbox::{ConnectionEvent, Delivery, Inbox, Payload, QueueLimits, TryRecvError};
pub use jid;
pub use minidom;
pub use wire::muc::{RemovalReason, SelfOccupant};
pub use wire::share::{SharedApp, SharedAppFrame};
pub use wire::update::{StatusUpdate, UpdateFrame};
pub use wire::upload::{Slot, UploadService};
pub use wire::{ErrorCondition, MAX_PAYLOAD};

/// The README's code blocks, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
