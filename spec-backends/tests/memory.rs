//! The conformance suite on the memory backend.
spec_tests::conformance_tests!(spec_backends::memory::MemoryHarness::new());
