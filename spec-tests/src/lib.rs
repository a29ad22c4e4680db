//! The conformance suite for the webxdc realtime channel.
#![deny(missing_docs)]

pub mod harness;
