//! The conformance suite for the webxdc realtime channel
//! (`joinRealtimeChannel()`).
//!
//! The suite checks the contract every backend of the realtime channel must
//! keep (delivery to every other peer and never back to the sender, exact
//! bytes, the 128000-byte limit, isolation between app instances and
//! chats, nothing replayed to late joiners, per-sender order, `leave`
//! semantics, bounded queues with reported overflow, recovery after a
//! transport restart), whatever carries it: XMPP, Iroh gossip, memory.
//!
//! * [`harness`]: the trait a backend implements ("a chat with N members;
//!   let member i join instance k"), with [`Capabilities`](harness::Capabilities)
//!   for differences the specification allows (a flag only ever skips a
//!   case, it never relaxes one).
//! * [`cases`]: one public async function per checked behaviour, each
//!   returning an [`Outcome`]; [`cases::all`] lists them.
//! * [`sync`]: synchronisation by events, not sleeps: the "send until
//!   received" [`barrier`](sync::barrier), absence proven by causality,
//!   and the one documented quiet window [`QUIET`](sync::QUIET) (500 ms)
//!   used by [`expect_nothing`](sync::expect_nothing) where the transport
//!   gives no order to rely on (for example between two Iroh gossip
//!   topics). [`PATIENCE`](sync::PATIENCE) (20 s) is only a hang guard.
//! * [`conformance_tests!`]: one line that expands into one named `#[test]`
//!   per case for a harness.
//! * [`runner`]: runs every case on several backends and prints one table,
//!   compared against per-backend expectation files.
//!
//! The crate has no transport in it: it depends on a runtime (tokio) and
//! `futures`, nothing else. Backends live with their transports; a
//! complete one written against this crate's public API alone is
//! `examples/broadcast.rs` (an in-process broadcast hub),
//! which the crate's own tests run through the whole suite.
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cases;
pub mod harness;
pub mod runner;
pub mod sync;

/// What a case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend keeps the contract in this respect.
    Pass,
    /// It does not; the reason says what happened instead.
    Fail(String),
    /// The case's premise needs a capability the backend lacks.
    Skipped(String),
}

impl Outcome {
    /// `pass`, `FAIL` or `skipped`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

/// Expands into one `#[test]` per case, named after the case, for the
/// harness that the expression makes (evaluated afresh for every test,
/// inside the test's tokio runtime).
///
/// A failing case panics with its reason; a case skipped for a missing
/// capability passes and prints a note. Use it at the top level of an
/// integration test file (`tests/conformance.rs`):
///
/// ```ignore
/// spec_tests::conformance_tests!(my_backend::MyHarness::new());
/// ```
///
/// A complete backend that runs the suite this way, written against this
/// crate's public API only, is `examples/broadcast.rs`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__with_cases!($crate::__conformance_tests_each!($make));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests_each {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::runner::run_test(stringify!($case), || $make);
            }
        )*

        /// The macro expands every case of the suite, and only those.
        #[test]
        fn conformance_tests_cover_every_case() {
            $crate::runner::assert_all_cases(&[$(stringify!($case)),*]);
        }
    };
}
