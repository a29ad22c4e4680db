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
//! * [`backends`]: the in-memory reference (the library's sans-IO engine
//!   and a simulated MUC) and the XMPP backend (real Prosody or ejabberd).
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backends;
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
/// integration test file:
///
/// ```
/// spec_tests::conformance_tests!(spec_tests::backends::memory::MemoryHarness::new());
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_tests_each!(
            $make;
            two_peers_both_directions,
            three_peers_all_receive,
            exact_bytes_all_256_values,
            empty_payload,
            max_size_payload_round_trip,
            oversize_rejected_channel_still_works,
            no_self_echo,
            other_device_of_same_member_receives,
            per_sender_order_200,
            identical_payloads_both_delivered,
            no_duplicates_when_send_races_join,
            isolation_between_instances_in_one_chat,
            isolation_between_chats_same_instance,
            late_joiner_receives_nothing_older,
            leave_stops_delivery_at_once,
            leave_twice_is_harmless,
            send_after_leave_is_an_error,
            double_join_is_an_error,
            join_again_after_leave_works,
            simultaneous_join_both_directions,
            burst_of_200_without_loss,
            slow_reader_gets_queue_or_lagged,
            transport_restart_channel_works_again,
        );
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
