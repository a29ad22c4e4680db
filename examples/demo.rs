//! The quick-start demo: starts a throwaway Prosody on 127.0.0.1 (installing
//! it with apt-get if it is missing), runs the bot and two peers in a room,
//! shows payloads flowing both ways with round-trip times, and exits.
//!
//! ```text
//! cargo run --example demo
//! ```

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use webxdc_realtime_xmpp::{Channel, Client, Config, Delivery};
use xmpp_test_server::{Options, TestServer};

const ROUNDS: usize = 20;
const INSTANCE: &str = "demo-webxdc-instance";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let server = TestServer::start(Options::prosody())?;
    println!(
        "demo: throwaway Prosody (pid {}) on {} ready after {:.1?}",
        server.pid(),
        server.c2s_addr(),
        started.elapsed()
    );
    let room = format!("demo@{}", server.muc_domain()).parse()?;
    let connect = |name: &'static str| {
        let (jid, password) = server.account(name).expect("account");
        // Plaintext only because this server is a throwaway on loopback.
        let config = Config::new(jid.parse().expect("jid"), password)
            .danger_plaintext_loopback_only(server.c2s_addr());
        async move { Client::connect(config).await }
    };

    let bot = connect("bot").await?;
    let bot_task = tokio::spawn(common::serve(bot.clone(), vec![room]));
    let alice = connect("alice").await?;
    let bob = connect("bob").await?;
    let room = format!("demo@{}", server.muc_domain()).parse()?;
    let mut a = alice.group(room).await?.join_realtime_channel(INSTANCE)?;
    let room = format!("demo@{}", server.muc_domain()).parse()?;
    let mut b = bob.group(room).await?.join_realtime_channel(INSTANCE)?;
    println!("demo: alice and bob joined app instance '{INSTANCE}'");

    // The bot joins an instance when it first sees it, so the first pings
    // may go unanswered: ping until it answers.
    let t = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        a.send(format!("ping hello {n}").as_bytes()).await?;
        if wait_for(
            &mut a,
            format!("pong hello {n}").as_bytes(),
            Duration::from_millis(500),
        )
        .await
        .is_some()
        {
            break;
        }
    }
    println!(
        "demo: the bot answers (after {n} ping(s), {:.1?})",
        t.elapsed()
    );

    let rtt_a = round_trips(&mut a, "alice").await?;
    let rtt_b = round_trips(&mut b, "bob").await?;

    // Peer to peer, both directions.
    a.send(b"hello bob, alice here").await?;
    let got = wait_for_prefix(&mut b, b"hello bob").await;
    println!(
        "demo: bob received {:?} from {}",
        String::from_utf8_lossy(&got.0),
        got.1
    );
    b.send(b"hello alice, bob here").await?;
    let got = wait_for_prefix(&mut a, b"hello alice").await;
    println!(
        "demo: alice received {:?} from {}",
        String::from_utf8_lossy(&got.0),
        got.1
    );

    println!();
    println!(
        "round trips through the server (peer -> room -> bot -> room -> peer), {ROUNDS} each:"
    );
    for (who, rtts) in [("alice", rtt_a), ("bob", rtt_b)] {
        let mut sorted = rtts.clone();
        sorted.sort();
        println!(
            "  {who:5}  min {:>8.2?}  p50 {:>8.2?}  max {:>8.2?}",
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1]
        );
    }
    println!();

    a.leave();
    b.leave();
    alice.shutdown().await;
    bob.shutdown().await;
    bot.shutdown().await;
    bot_task
        .await?
        .map_err(|e| e as Box<dyn std::error::Error>)?;
    drop(server);
    println!("demo: done in {:.1?}, server stopped", started.elapsed());
    Ok(())
}

/// Sends `ROUNDS` pings and measures the time until the bot's pong.
async fn round_trips(
    ch: &mut Channel,
    who: &str,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut rtts = Vec::new();
    for i in 1..=ROUNDS {
        let t = Instant::now();
        ch.send(format!("ping {who} {i}").as_bytes()).await?;
        wait_for(
            ch,
            format!("pong {who} {i}").as_bytes(),
            Duration::from_secs(10),
        )
        .await
        .ok_or("no pong within 10 s")?;
        let rtt = t.elapsed();
        println!("demo: {who:5} ping {i:2} -> pong in {rtt:.2?}");
        rtts.push(rtt);
    }
    Ok(rtts)
}

/// Reads until `expected` arrives (other traffic in the group is skipped).
async fn wait_for(ch: &mut Channel, expected: &[u8], limit: Duration) -> Option<()> {
    tokio::time::timeout(limit, async {
        while let Some(item) = ch.next().await {
            if let Delivery::Payload(p) = item {
                if p.data == expected {
                    return;
                }
            }
        }
    })
    .await
    .ok()
}

async fn wait_for_prefix(ch: &mut Channel, prefix: &[u8]) -> (Vec<u8>, String) {
    while let Some(item) = ch.next().await {
        if let Delivery::Payload(p) = item {
            if p.data.starts_with(prefix) {
                return (p.data, p.from.to_string());
            }
        }
    }
    (Vec::new(), "nobody (channel ended)".into())
}
