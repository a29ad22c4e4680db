//! The demo bot: point it at a test server. It enters a room and takes part
//! in every realtime channel it sees there, answering `ping…` payloads with
//! `pong…` and printing everything else it receives.
//!
//! ```text
//! cargo run --example bot -- --jid bot@example.org --password SECRET \
//!     --room demo@conference.example.org [--server HOST:PORT] [--insecure-plaintext-loopback]
//! ```
//!
//! By default it connects with STARTTLS (system roots, or `SSL_CERT_FILE`),
//! finding the server by DNS SRV unless `--server` is given.
//! `--insecure-plaintext-loopback` (only for a throwaway server on this
//! machine) connects without encryption to the loopback `--server`.
//!
//! It joins at most `--max-channels` app instances (default 64): an
//! occupant can invent thread ids at will, and at the cap the bot refuses
//! new instances, each refusal logged at warn with the room and thread
//! (see `examples/common/mod.rs` for why refusing rather than evicting).

mod common;

use std::net::SocketAddr;

use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Client, Config};

fn usage() -> ! {
    eprintln!(
        "usage: bot --jid JID --password PASSWORD --room ROOM_JID [--room ROOM_JID ...] \
         [--server HOST:PORT] [--insecure-plaintext-loopback] [--max-channels N]"
    );
    std::process::exit(2)
}

/// Stops with a message that names the bad value.
fn bad(what: &str, value: &str, why: impl std::fmt::Display) -> ! {
    eprintln!("bot: {what} '{value}' is not valid: {why}");
    std::process::exit(2)
}

/// A bare JID with a local part (`user@domain`, `room@service`), or stop.
fn bare_jid(what: &str, value: &str) -> BareJid {
    match value.parse::<BareJid>() {
        Ok(j) if j.node().is_some() => j,
        Ok(_) => bad(what, value, "a domain alone; give name@domain"),
        Err(e) => bad(what, value, e),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Refusals at the channel cap are warnings; RUST_LOG shows more.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let (mut jid, mut password, mut server, mut rooms, mut plaintext) =
        (None, None, None, Vec::new(), false);
    let mut options = common::BotOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--jid" => jid = Some(bare_jid("--jid", &value())),
            "--password" => password = Some(value()),
            "--server" => server = Some(value()),
            "--room" => rooms.push(bare_jid("--room", &value())),
            "--max-channels" => {
                let v = value();
                options.max_channels = match v.parse() {
                    Ok(n) if n > 0 => n,
                    Ok(_) => bad("--max-channels", &v, "must be at least 1"),
                    Err(e) => bad("--max-channels", &v, e),
                };
            }
            "--insecure-plaintext-loopback" => plaintext = true,
            _ => usage(),
        }
    }
    let (Some(jid), Some(password)) = (jid, password) else {
        usage()
    };
    if rooms.is_empty() {
        usage();
    }
    let mut config = Config::new(jid, password);
    config = match (server, plaintext) {
        (Some(addr), true) => match addr.parse::<SocketAddr>() {
            Ok(a) => config.danger_plaintext_loopback_only(a),
            Err(e) => bad(
                "--server (with --insecure-plaintext-loopback, IP:PORT)",
                &addr,
                e,
            ),
        },
        (None, true) => usage(),
        (Some(hostport), false) => match hostport.rsplit_once(':').map(|(h, p)| (h, p.parse())) {
            Some((host, Ok(port))) => config.with_server(host, port),
            _ => bad(
                "--server (HOST:PORT)",
                &hostport,
                "no port after the last ':'",
            ),
        },
        (None, false) => config,
    };
    let client = Client::connect(config).await?;
    println!("bot: connected as {}", client.jid());
    let (counts, _) = tokio::sync::watch::channel(common::BotCounts::default());
    let serving = tokio::spawn(common::serve_with(client.clone(), rooms, options, counts));
    tokio::select! {
        r = serving => r?.map_err(|e| e as Box<dyn std::error::Error>)?,
        _ = tokio::signal::ctrl_c() => println!("bot: interrupted, leaving"),
    }
    client.shutdown().await;
    Ok(())
}
