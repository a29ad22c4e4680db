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

mod common;

use std::net::SocketAddr;

use webxdc_realtime_xmpp::{Client, Config};

fn usage() -> ! {
    eprintln!(
        "usage: bot --jid JID --password PASSWORD --room ROOM_JID [--room ROOM_JID ...] \
         [--server HOST:PORT] [--insecure-plaintext-loopback]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut jid, mut password, mut server, mut rooms, mut plaintext) =
        (None, None, None, Vec::new(), false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jid" => jid = args.next(),
            "--password" => password = args.next(),
            "--server" => server = args.next(),
            "--room" => rooms.push(args.next().unwrap_or_else(|| usage()).parse()?),
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
    let mut config = Config::new(jid.parse()?, password);
    config = match (server, plaintext) {
        (Some(addr), true) => config.danger_plaintext_loopback_only(addr.parse::<SocketAddr>()?),
        (None, true) => usage(),
        (Some(hostport), false) => {
            let (host, port) = hostport.rsplit_once(':').unwrap_or_else(|| usage());
            config.with_server(host, port.parse()?)
        }
        (None, false) => config,
    };
    let client = Client::connect(config).await?;
    println!("bot: connected as {}", client.jid());
    let serving = tokio::spawn(common::serve(client.clone(), rooms));
    tokio::select! {
        r = serving => r?.map_err(|e| e as Box<dyn std::error::Error>)?,
        _ = tokio::signal::ctrl_c() => println!("bot: interrupted, leaving"),
    }
    client.shutdown().await;
    Ok(())
}
