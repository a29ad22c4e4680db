//! Integration tests against a real ejabberd (installed on demand).

mod common;

use xmpp_test_server::ServerKind::Ejabberd;

#[test]
fn stream_features() {
    common::check_stream_features(Ejabberd);
}

#[test]
fn accounts() {
    common::check_accounts(Ejabberd);
}

#[test]
fn restart_keeps_port_and_accounts() {
    common::check_restart(Ejabberd);
}

#[test]
fn side_by_side() {
    common::check_side_by_side(Ejabberd);
}

#[test]
fn stop_kills_the_process() {
    common::check_stop(Ejabberd);
}

#[test]
fn orphan_shuts_down() {
    common::check_owner_death(Ejabberd, "owner_death_helper");
}

#[test]
#[ignore = "helper run by orphan_shuts_down in a child process"]
fn owner_death_helper() {
    common::owner_death_helper(Ejabberd);
}

#[test]
fn tls() {
    common::check_tls(Ejabberd);
}

#[test]
fn rate_limit() {
    common::check_rate_limit(Ejabberd);
}

#[test]
fn muc_archive() {
    common::check_muc_archive(Ejabberd);
}
