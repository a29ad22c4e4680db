//! The conformance suite on the prosody backend.
spec_tests::conformance_tests!(spec_backends::xmpp::XmppHarness::prosody());
