//! Runs the conformance suite on this workspace's backends (memory,
//! Prosody, ejabberd, a federated Prosody ⇄ ejabberd pair, a two-node
//! ejabberd cluster) and prints the result table. See `spec_tests::runner`
//! for the options.

use spec_backends::{memory::MemoryHarness, xmpp::XmppHarness};
use spec_tests::runner::Backend;

fn main() {
    let backends = vec![
        Backend::new("memory", MemoryHarness::new),
        Backend::new("xmpp-prosody", XmppHarness::prosody),
        Backend::new("xmpp-ejabberd", XmppHarness::ejabberd),
        Backend::new("xmpp-federated", XmppHarness::federated),
        Backend::new("xmpp-ejabberd-cluster", XmppHarness::ejabberd_cluster),
    ];
    std::process::exit(spec_tests::runner::main(backends));
}
