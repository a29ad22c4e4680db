//! Integration tests against a real Prosody (installed on demand).

mod common;

use xmpp_test_server::ServerKind::Prosody;

#[test]
fn stream_features() {
    common::check_stream_features(Prosody);
}

#[test]
fn accounts() {
    common::check_accounts(Prosody);
}

#[test]
fn restart_keeps_port_and_accounts() {
    common::check_restart(Prosody);
}

#[test]
fn side_by_side() {
    common::check_side_by_side(Prosody);
}

#[test]
fn stop_kills_the_process() {
    common::check_stop(Prosody);
}

#[test]
fn orphan_shuts_down() {
    common::check_owner_death(Prosody, "owner_death_helper");
}

#[test]
#[ignore = "helper run by orphan_shuts_down in a child process"]
fn owner_death_helper() {
    common::owner_death_helper(Prosody);
}

#[test]
fn tls() {
    common::check_tls(Prosody);
}

#[test]
fn rate_limit() {
    common::check_rate_limit(Prosody);
}

#[test]
fn muc_archive() {
    common::check_muc_archive(Prosody);
}
