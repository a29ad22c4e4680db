//! The backends that ship with the suite.
//!
//! * [`memory`]: the reference: the library's sans-IO engine, one per
//!   device, wired to a simulated MUC room. Deterministic, no network.
//! * [`xmpp`]: the library's XMPP client against a throwaway Prosody or
//!   ejabberd on loopback.

pub mod memory;
pub mod xmpp;
