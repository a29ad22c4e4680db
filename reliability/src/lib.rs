//! The reliability campaign: each part tries to break the library one way
//! and reports what it saw as [`Row`]s of one table (`docs/reliability.md`).
//!
//! Run it with `cargo run --release -p reliability` (the full campaign,
//! which rewrites `docs/reliability.md`) or `-- --quick` (every part at a
//! small scale, as the tests do). `cargo test -p reliability` runs each
//! part in quick mode and fails on any row that did not hold.
//!
//! # Layout
//!
//! * [`fuzz`]: part 1, hostile stanzas through the engine and the wire
//!   decoder, every delivery re-validated independently.
//! * [`load`]: part 2, many peers sending at a fixed rate for a while on
//!   Prosody and ejabberd.
//! * [`flood`]: part 3, a sender that outruns the server: sent = received
//!   + reported.
//! * [`faults`]: part 4, servers killed, frozen, cut off half-open, rooms
//!   that remove us, hostile servers; time to notice and to recover.
//! * [`api`]: part 5, bad input at the API.
//! * [`setup`]: throwaway servers, clients and the connectivity barrier
//!   the parts share.
//! * [`report`]: the rows, the table and the document.

pub mod api;
pub mod faults;
pub mod flood;
pub mod fuzz;
pub mod load;
pub mod report;
pub mod setup;

pub use report::{Part, Row, Scale};
