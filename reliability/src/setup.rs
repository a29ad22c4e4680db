//! What the parts share: throwaway servers, clients on them, and
//! connectivity by causality (the conformance suite's "send until
//! received" barrier) instead of sleeps.

use std::time::Duration;

use futures::StreamExt;
use spec_tests::harness::{Received, SendFailure};
use tokio::time::timeout;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::{Channel, Client, Config, Delivery, SendError};
use xmpp_test_server::{Options, ServerKind, TestServer};

/// Upper bound for anything that should happen promptly on loopback: a
/// hang guard, never a synchronisation.
pub use spec_tests::sync::PATIENCE;

/// Logs to standard error when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Starts a fresh server of `kind` on a free loopback port.
pub fn server(kind: ServerKind) -> TestServer {
    init_tracing();
    TestServer::start(Options::new(kind)).expect("start the test server")
}

/// A server's name for the table.
pub fn name(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Prosody => "Prosody",
        ServerKind::Ejabberd => "ejabberd",
    }
}

/// The configuration of account `name` (created if new) on `server`.
pub fn config(server: &TestServer, name: &str) -> Config {
    let (jid, password) = server.account(name).expect("create account");
    Config::new(jid.parse().expect("account jid"), password)
        .danger_plaintext_loopback_only(server.c2s_addr())
        .with_connect_timeout(Duration::from_secs(10))
}

/// A connected client for account `name`.
pub async fn client(server: &TestServer, name: &str) -> Client {
    Client::connect(config(server, name))
        .await
        .expect("client connects")
}

/// Room `name` on the server's MUC service.
pub fn room(server: &TestServer, name: &str) -> BareJid {
    format!("{name}@{}", server.muc_domain())
        .parse()
        .expect("room jid")
}

/// Enters `room` and joins app instance `thread` in it.
pub async fn join(client: &Client, room: &BareJid, thread: &str) -> Channel {
    client
        .group(room.clone())
        .await
        .expect("room joined")
        .join_realtime_channel(thread)
        .expect("channel joined")
}

/// Establishes connectivity from `sender` to every receiver (a fresh
/// marker sent until each has seen one, then each drained to the last
/// marker): the conformance suite's barrier on library channels.
pub async fn barrier(sender: &Channel, receivers: &mut [&mut Channel]) -> Result<(), String> {
    let mut sender = Peer::Sender(sender);
    let mut peers: Vec<Peer<'_>> = receivers.iter_mut().map(|r| Peer::Receiver(r)).collect();
    let mut peers: Vec<&mut Peer<'_>> = peers.iter_mut().collect();
    spec_tests::sync::barrier(&mut sender, &mut peers)
        .await
        .map_err(|e| format!("connectivity not established: {e}"))
}

/// A library channel as the suite's `Channel`, for its barrier.
enum Peer<'a> {
    Sender(&'a Channel),
    Receiver(&'a mut Channel),
}

impl spec_tests::harness::Channel for Peer<'_> {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        let ch: &Channel = match self {
            Peer::Sender(ch) => ch,
            Peer::Receiver(ch) => ch,
        };
        ch.send(data).await.map_err(|e| match e {
            SendError::TooLarge { .. } => SendFailure::TooLarge,
            SendError::Left => SendFailure::Left,
            other => SendFailure::Other(other.to_string()),
        })
    }

    async fn recv(&mut self, wait: Duration) -> Received {
        let Peer::Receiver(ch) = self else {
            return Received::Closed;
        };
        let next = async {
            loop {
                match ch.next().await {
                    Some(Delivery::Payload(p)) => return Received::Payload(p.data),
                    Some(Delivery::Lagged { dropped }) => return Received::Lagged(dropped),
                    Some(_) => continue,
                    None => return Received::Closed,
                }
            }
        };
        timeout(wait, next).await.unwrap_or(Received::Timeout)
    }

    async fn leave(&mut self) {
        if let Peer::Receiver(ch) = self {
            ch.leave();
        }
    }
}

/// Sends signal `sig` (`-STOP`, `-CONT`, `-KILL`) to process `pid`: how the
/// parts freeze, thaw and kill a server.
pub fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {sig} {pid} failed"))
    }
}
