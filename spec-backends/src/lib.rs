//! This workspace's backends for the conformance suite (`spec-tests`), and
//! the runner that puts them in one table.
//!
//! * [`memory`]: the reference: the library's sans-IO engine, one per
//!   device, wired to a simulated MUC room. Deterministic, no network.
//! * [`xmpp`]: the library's XMPP client against a throwaway Prosody or
//!   ejabberd on loopback.
//! * `src/bin/conformance.rs`: the runner on memory, Prosody and ejabberd
//!   (`cargo run -p spec-backends --bin conformance`); `tests/` runs the
//!   suite's one-line macro on each backend (`cargo test -p spec-backends`).
//!
//! Why a package of its own rather than features of `spec-tests`: the
//! suite is meant to be depended on by other implementations of the
//! contract (an Iroh one, a JavaScript host's), who must not get an XMPP
//! stack and a Prosody launcher in their dependency tree, not even as
//! optional entries in their lock file. A separate package keeps
//! `spec-tests` transport-free by construction (`cargo tree -p spec-tests`),
//! and lets this one depend on the library and the test servers freely.
//! The Iroh backend is a package of its own for the same reason
//! (`iroh-backend/`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod memory;
pub mod xmpp;

use std::time::Duration;

use futures::{Stream, StreamExt};
use webxdc_realtime_xmpp::{Delivery, JoinError, SendError};

use spec_tests::harness::{HarnessError, JoinFailure, Received, SendFailure};

/// The device behind `member` of chat number `chat`, whose members are
/// `members` (device numbers).
fn device_of(members: &[usize], member: usize, chat: usize) -> Result<usize, HarnessError> {
    members
        .get(member)
        .copied()
        .ok_or_else(|| HarnessError(format!("no member {member} in chat {chat}")))
}

/// The library's join error, as far as the contract cares.
fn join_failure(e: JoinError) -> JoinFailure {
    match e {
        JoinError::AlreadyJoined => JoinFailure::AlreadyJoined,
        other => JoinFailure::Other(other.to_string()),
    }
}

/// The library's send error, as far as the contract cares.
fn send_failure(e: SendError) -> SendFailure {
    match e {
        SendError::TooLarge { .. } => SendFailure::TooLarge,
        SendError::Left => SendFailure::Left,
        other => SendFailure::Other(other.to_string()),
    }
}

/// The next data item of a library channel (or inbox), within `timeout`.
/// Connection notices (disconnected, reconnected) are not data: the cases
/// wait for data.
async fn recv_delivery(
    deliveries: &mut (impl Stream<Item = Delivery> + Unpin),
    timeout: Duration,
) -> Received {
    let item = tokio::time::timeout(timeout, async {
        loop {
            match deliveries.next().await {
                Some(Delivery::Payload(p)) => return Received::Payload(p.data),
                Some(Delivery::Lagged { dropped }) => return Received::Lagged(dropped),
                Some(_) => continue,
                None => return Received::Closed,
            }
        }
    })
    .await;
    item.unwrap_or(Received::Timeout)
}
