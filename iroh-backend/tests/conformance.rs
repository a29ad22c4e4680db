//! The conformance suite on both Iroh variants.
//!
//! * `fixed::*`: one test per case (the suite's macro) on `iroh-fixed`,
//!   which is expected to pass everything.
//! * `deltachat_matches_expectations`: every case on `iroh-deltachat`, the
//!   faithful Delta Chat mirror, which fails some cases by design. The
//!   cases listed in `spec-tests/expectations/iroh-deltachat.txt` must fail
//!   every time; every other case must pass, but may need up to
//!   [`TRIES`] tries, because Delta Chat's design is intermittently out of
//!   order and can stall (the file's comments say why). Every retry is
//!   printed.

use std::collections::BTreeMap;

use iroh_backend::IrohHarness;
use spec_tests::cases;
use spec_tests::runner::{default_expectations, load_expectations};
use spec_tests::Outcome;

/// iroh 0.35's port mapper probes the default gateway: move the whole test
/// process into a loopback-only network namespace before any thread starts.
#[ctor::ctor]
fn isolate_network() {
    if let Err(e) = iroh_backend::netns::isolate() {
        eprintln!("iroh-backend: cannot isolate the network: {e}");
    }
}

mod fixed {
    spec_tests::conformance_tests!(iroh_backend::IrohHarness::fixed());
}

/// Tries a case that is not expected to fail gets on `iroh-deltachat`.
const TRIES: usize = 3;

#[test]
fn deltachat_matches_expectations() {
    let expected: BTreeMap<String, String> =
        load_expectations(&default_expectations(), "iroh-deltachat")
            .expect("readable expectations file");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut problems = Vec::new();
    for case in cases::all::<IrohHarness>() {
        let tries = if expected.contains_key(case.name) {
            1
        } else {
            TRIES
        };
        let mut outcomes = Vec::new();
        for _ in 0..tries {
            let outcome = rt.block_on(async { (case.run)(IrohHarness::deltachat()).await });
            let done = !matches!(outcome, Outcome::Fail(_));
            outcomes.push(outcome);
            if done {
                break;
            }
        }
        let last = outcomes.last().cloned().unwrap_or(Outcome::Pass);
        match (expected.get(case.name), &last) {
            (Some(_), Outcome::Fail(_)) | (None, Outcome::Pass | Outcome::Skipped(_)) => {
                if outcomes.len() > 1 {
                    eprintln!(
                        "iroh-deltachat / {}: passed after {} tries; earlier: {:?}",
                        case.name,
                        outcomes.len(),
                        &outcomes[..outcomes.len() - 1]
                    );
                }
            }
            (Some(reason), _) => problems.push(format!(
                "{} passed but is listed as failing ({reason})",
                case.name
            )),
            (None, Outcome::Fail(why)) => {
                problems.push(format!("{} failed {tries} times, last: {why}", case.name))
            }
        }
    }
    assert!(problems.is_empty(), "iroh-deltachat: {problems:#?}");
}
