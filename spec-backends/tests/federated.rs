//! The conformance suite on a federated pair: rooms on Prosody, every
//! second member on ejabberd, the restart case restarting ejabberd.
spec_tests::conformance_tests!(spec_backends::xmpp::XmppHarness::federated());
