//! The conformance suite on a two-node ejabberd cluster, members split
//! over the nodes, the restart case restarting the second node.
spec_tests::conformance_tests!(spec_backends::xmpp::XmppHarness::ejabberd_cluster());
