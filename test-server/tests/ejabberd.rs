//! Integration tests against a real ejabberd (installed on demand): the
//! checks of `common`, run on this server.

mod common;

common::server_tests!(Ejabberd);
