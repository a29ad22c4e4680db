//! A webxdc host: runs webxdc apps in a browser and connects their
//! `window.webxdc` (the realtime channel and status updates) to a chat,
//! over XMPP with the `webxdc-realtime-xmpp` library, or over any other
//! [`Transport`].
//!
//! ```text
//!  browser page (app files + /webxdc.js)        this crate
//!    window.webxdc ──same-origin WebSocket──▶ bridge ──▶ Transport ──▶ chat
//!    (realtime: binary frames,                  │        (XmppTransport:
//!     updates: JSON text)                       │         the library's
//!                                               └──────▶  Channel, updates)
//! ```
//!
//! # Layout
//!
//! * [`loader`]: an app from a `.xdc` file (zip) or a directory, checked
//!   (index.html, paths that stay inside, bounded unpacked sizes) and held
//!   in memory; [`loader::pack_dir`] makes a `.xdc`.
//! * [`server`]: one HTTP listener per (app instance, local user) on
//!   127.0.0.1, so each is an origin of its own; the security headers on
//!   every response; only the app's files and `/webxdc.js`.
//! * `bridge`: the WebSocket between a page and its transport: checks who
//!   connects (per-origin secret and `Origin`), enforces the contract at
//!   the boundary, one page per origin at a time.
//! * `updates`: the status updates of an instance with the host's serials,
//!   read from the transport's feed (past first, then live).
//! * [`share`]: an app shared into the chat (uploaded with XEP-0363, sent
//!   in Cheogram's shape, its thread the instance id), and an app someone
//!   shared opened from its URL (plain `http://` only, bounded, hash
//!   checked).
//! * [`transport`]: the trait the bridge talks to, with
//!   [`transport::xmpp::XmppTransport`] (the library) and
//!   [`transport::memory::MemoryChat`] (in-process, for fast tests).
//! * `js/webxdc.js`: the page side, served as `/webxdc.js` with the
//!   origin's settings written in.
//! * `main.rs`: the `webxdc-host` command.
//!
//! # Use
//!
//! ```no_run
//! use std::sync::Arc;
//! use webxdc_host::{App, Origin, transport::xmpp::XmppTransport};
//! use webxdc_realtime_xmpp::{Client, Config};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Arc::new(App::load("chess.xdc".as_ref())?);
//! let client = Client::connect(Config::new("alice@example.org".parse()?, "secret")).await?;
//! let chat = client.group("team@conference.example.org".parse()?).await?;
//! let transport = Arc::new(XmppTransport::new(client, chat));
//! let origin = Origin::serve(app, transport, "thread-of-the-webxdc-message").await?;
//! println!("open {}", origin.url()); // in a browser that runs nothing else there
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bridge;
pub mod loader;
pub mod server;
pub mod share;
pub mod transport;
mod updates;

pub use loader::{App, Limits, LoadError};
pub use server::Origin;
pub use transport::Transport;
