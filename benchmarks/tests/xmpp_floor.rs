//! The conformance suite on the benchmark's XMPP floor: the library's real
//! client against the minimal in-process server, so the floor is checked to
//! be a faithful room before its figures are compared with the servers'.
spec_tests::conformance_tests!(benchmarks::xmpp_floor::XmppFloorHarness::new());
