//! Helpers shared by the integration tests: a throwaway server per test,
//! clients on it, and synchronisation by causality ("send until received",
//! "the marker arrives first") instead of sleeps: the conformance suite's
//! own barrier (`spec_tests::sync`), and the test server's raw-socket
//! client for stanzas no XMPP library would build.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use spec_tests::harness::{Received, SendFailure};
use tokio::time::timeout;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::{Channel, Client, Config, Delivery, Payload, SendError};
use xmpp_test_server::raw::RawClient as RawXmpp;
use xmpp_test_server::{Options, TestServer};

/// Upper bound for anything that should happen promptly on loopback. Only a
/// hang guard: tests wait for events, never for time.
pub use spec_tests::sync::PATIENCE;

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn prosody() -> TestServer {
    init_tracing();
    TestServer::start(Options::prosody()).expect("start prosody")
}

pub fn ejabberd() -> TestServer {
    init_tracing();
    TestServer::start(Options::ejabberd()).expect("start ejabberd")
}

pub fn config(server: &TestServer, name: &str) -> Config {
    let (jid, password) = server.account(name).expect("create account");
    Config::new(jid.parse().expect("account jid"), password)
        .danger_plaintext_loopback_only(server.c2s_addr())
        .with_connect_timeout(Duration::from_secs(10))
}

pub async fn client(server: &TestServer, name: &str) -> Client {
    Client::connect(config(server, name))
        .await
        .expect("client connects")
}

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

/// The next payload on `ch`, skipping connection events.
pub async fn next_payload(ch: &mut Channel) -> Payload {
    timeout(PATIENCE, async {
        loop {
            match ch.next().await {
                Some(Delivery::Payload(p)) => return p,
                Some(Delivery::Connection(_)) => continue,
                Some(other) => panic!("unexpected delivery {other:?}"),
                None => panic!("channel ended while waiting for a payload"),
            }
        }
    })
    .await
    .expect("a payload within the patience window")
}

/// Establishes connectivity from `sender` to every receiver: sends a fresh
/// marker until each receiver has seen one, then drains every receiver up
/// to the last marker, so that the channels are quiet afterwards. Anything
/// but a marker arriving meanwhile fails the test. This is the conformance
/// suite's barrier (`spec_tests::sync::barrier`), run on library channels.
pub async fn barrier(sender: &Channel, receivers: &mut [&mut Channel]) {
    let mut sender = Peer::Sender(sender);
    let mut peers: Vec<Peer<'_>> = receivers.iter_mut().map(|r| Peer::Receiver(r)).collect();
    let mut peers: Vec<&mut Peer<'_>> = peers.iter_mut().collect();
    if let Err(e) = spec_tests::sync::barrier(&mut sender, &mut peers).await {
        panic!("connectivity not established: {e}");
    }
}

/// A library channel as the suite's `Channel`, for its barrier: the
/// barrier's sender only sends (the library's `send` takes `&self`), its
/// receivers receive.
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
            // Not joined again yet after a reconnect, …: the barrier
            // tries again in its next round.
            other => SendFailure::Other(other.to_string()),
        })
    }

    async fn recv(&mut self, wait: Duration) -> Received {
        let Peer::Receiver(ch) = self else {
            return Received::Closed; // the barrier never reads its sender
        };
        let next = async {
            loop {
                match ch.next().await {
                    Some(Delivery::Payload(p)) => return Received::Payload(p.data),
                    Some(Delivery::Lagged { dropped }) => return Received::Lagged(dropped),
                    // Connection notices are not data.
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

/// Sends a raw stanza through a plain tokio-xmpp client (for stanzas our
/// library would never build: Cheogram's, forged, outsiders').
pub struct RawClient {
    pub client: tokio_xmpp::Client,
    pub jid: webxdc_realtime_xmpp::jid::FullJid,
}

impl RawClient {
    pub async fn connect(server: &TestServer, name: &str) -> RawClient {
        let (jid, password) = server.account(name).expect("account");
        let jid: BareJid = jid.parse().expect("jid");
        let mut client = tokio_xmpp::Client::new_plaintext(
            jid,
            password,
            tokio_xmpp::connect::DnsConfig::addr(&server.c2s_addr().to_string()),
            tokio_xmpp::xmlstream::Timeouts::tight(),
        );
        let bound = timeout(PATIENCE, async {
            loop {
                if let Some(tokio_xmpp::Event::Online { bound_jid, .. }) = client.next().await {
                    return bound_jid;
                }
            }
        })
        .await
        .expect("raw client online");
        let jid = bound.try_into_full().expect("full jid");
        let mut raw = RawClient { client, jid };
        raw.send_xml("<presence xmlns='jabber:client'/>").await;
        raw
    }

    pub async fn send_xml(&mut self, xml: &str) {
        let el: Element = xml.parse().expect("test stanza parses");
        let stanza = xmpp_parsers::stanza::Stanza::try_from(el).expect("stanza");
        self.client
            .send_stanza(stanza)
            .await
            .expect("send raw stanza");
    }

    /// Enters a room and waits for its self-presence.
    pub async fn enter_room(&mut self, room: &BareJid, nick: &str) {
        self.send_xml(&format!(
            "<presence xmlns='jabber:client' to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        ))
        .await;
        self.next_matching(|el| {
            el.name() == "presence"
                && el
                    .get_child("x", "http://jabber.org/protocol/muc#user")
                    .is_some_and(|x| {
                        x.children()
                            .any(|c| c.name() == "status" && c.attr("code") == Some("110"))
                    })
        })
        .await;
    }

    /// The next stanza matching `pred` (others are skipped).
    pub async fn next_matching(&mut self, pred: impl Fn(&Element) -> bool) -> Element {
        timeout(PATIENCE, async {
            loop {
                match self.client.next().await {
                    Some(tokio_xmpp::Event::Stanza(s)) => {
                        let el = Element::from(s);
                        if pred(&el) {
                            return el;
                        }
                    }
                    Some(_) => continue,
                    None => panic!("raw client stream ended"),
                }
            }
        })
        .await
        .expect("matching stanza within the patience window")
    }

    pub async fn close(self) {
        let _ = self.client.send_end().await;
    }
}

/// A bare-bones XMPP client on a raw socket (plaintext, SASL PLAIN): it can
/// write any bytes, including stanzas that typed XMPP libraries refuse to
/// build, as a hostile peer's client would. The test server's blocking
/// client, driven off the runtime's threads.
pub struct RawSocket {
    /// `None` only while a write is in flight.
    client: Option<RawXmpp>,
    pub jid: String,
}

impl RawSocket {
    pub async fn connect(server: &TestServer, name: &str) -> RawSocket {
        let (jid, password) = server.account(name).expect("account");
        let (addr, domain) = (server.c2s_addr(), server.domain().to_owned());
        let client = tokio::task::spawn_blocking(move || {
            let mut c = RawXmpp::login(addr, &domain, &jid, &password, Some("raw"))?;
            c.send("<presence/>")?;
            Ok::<_, std::io::Error>(c)
        })
        .await
        .expect("raw client task")
        .expect("raw client logged in");
        let jid = client.jid().expect("a bound JID").to_owned();
        RawSocket {
            client: Some(client),
            jid,
        }
    }

    pub async fn write(&mut self, xml: &str) {
        let mut client = self.client.take().expect("no write in flight");
        let xml = xml.to_owned();
        let client = tokio::task::spawn_blocking(move || client.send(&xml).map(|()| client))
            .await
            .expect("raw write task")
            .expect("raw write");
        self.client = Some(client);
    }
}
