//! Runs the conformance suite on every backend of the project (memory,
//! Prosody, ejabberd, the federated pair, the ejabberd cluster, and both
//! Iroh variants) and prints one table.
//! Options: see `spec_tests::runner` (`--backend`, `--case`, `--jobs`,
//! `--markdown`, `--expectations`).
//!
//! The whole process first moves into a loopback-only network namespace
//! (see `iroh_backend::netns`), because iroh 0.35 probes the default gateway
//! for port mapping. The XMPP servers run inside it too, so Prosody and
//! ejabberd must already be installed: nothing can be downloaded from in
//! there.

use iroh_backend::IrohHarness;
use spec_backends::{memory::MemoryHarness, xmpp::XmppHarness};
use spec_tests::runner::Backend;

fn main() {
    // Before any thread exists, so every later thread and child process
    // inherits the namespace.
    if let Err(e) = iroh_backend::netns::isolate() {
        eprintln!(
            "warning: cannot enter a loopback-only network namespace ({e}); \
             the Iroh backends will refuse to start"
        );
    }
    let backends = vec![
        Backend::new("memory", MemoryHarness::new),
        Backend::new("xmpp-prosody", XmppHarness::prosody),
        Backend::new("xmpp-ejabberd", XmppHarness::ejabberd),
        Backend::new("xmpp-federated", XmppHarness::federated),
        Backend::new("xmpp-ejabberd-cluster", XmppHarness::ejabberd_cluster),
        Backend::new("iroh-deltachat", IrohHarness::deltachat),
        Backend::new("iroh-fixed", IrohHarness::fixed),
    ];
    std::process::exit(spec_tests::runner::main(backends));
}
