//! The conformance suite on the ejabberd backend.
spec_tests::conformance_tests!(spec_backends::xmpp::XmppHarness::ejabberd());
