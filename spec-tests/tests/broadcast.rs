//! The whole suite on the outside-style backend of `examples/broadcast.rs`,
//! with the one line an implementer writes.

#[path = "../examples/broadcast.rs"]
mod broadcast;

spec_tests::conformance_tests!(broadcast::BroadcastHarness::new());
