//! Helpers shared by the integration tests: a throwaway server per test,
//! clients on it, and synchronisation by causality ("send until received",
//! "the marker arrives first") instead of sleeps.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use tokio::time::timeout;
use webxdc_realtime_xmpp::jid::BareJid;
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::{Channel, Client, Config, Delivery, Payload};
use xmpp_test_server::{Options, TestServer};

/// Upper bound for anything that should happen promptly on loopback. Only a
/// hang guard: tests wait for events, never for time.
pub const PATIENCE: Duration = Duration::from_secs(20);

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
/// but a marker arriving meanwhile fails the test.
pub async fn barrier(sender: &Channel, receivers: &mut [&mut Channel]) {
    timeout(PATIENCE, async {
        let mut round = 0u32;
        // The last marker each receiver saw.
        let mut seen: Vec<Option<Vec<u8>>> = vec![None; receivers.len()];
        while seen.iter().any(|s| s.is_none()) {
            round += 1;
            let marker = format!("barrier-{round}");
            match sender.send(marker.as_bytes()).await {
                Ok(()) => {}
                // Not joined again yet (after a reconnect): try again.
                Err(_) => {
                    tokio::task::yield_now().await;
                }
            }
            for (i, r) in receivers.iter_mut().enumerate() {
                if seen[i].is_some() {
                    continue;
                }
                // Wait briefly for this round's marker; a missing one only
                // means another round.
                match timeout(Duration::from_millis(300), r.next()).await {
                    Ok(Some(Delivery::Payload(p))) => {
                        assert_marker(&p.data);
                        seen[i] = Some(p.data);
                    }
                    Ok(Some(Delivery::Connection(_))) | Err(_) => {}
                    Ok(other) => panic!("unexpected {other:?} during the barrier"),
                }
            }
        }
        // Drain the rounds still in flight, up to the last marker.
        let last = format!("barrier-{round}");
        for (r, seen) in receivers.iter_mut().zip(seen) {
            if seen.as_deref() == Some(last.as_bytes()) {
                continue;
            }
            loop {
                let data = next_payload(r).await.data;
                assert_marker(&data);
                if data == last.as_bytes() {
                    break;
                }
            }
        }
    })
    .await
    .expect("connectivity established");
}

/// Only barrier markers may arrive during a barrier: anything else is a
/// payload the test did not expect (an echo, a replay, a leak).
fn assert_marker(data: &[u8]) {
    assert!(
        data.starts_with(b"barrier-"),
        "unexpected payload during the barrier: {:?}",
        String::from_utf8_lossy(data)
    );
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
/// build, as a hostile peer's client would.
pub struct RawSocket {
    stream: tokio::net::TcpStream,
    pub jid: String,
}

impl RawSocket {
    pub async fn connect(server: &TestServer, name: &str) -> RawSocket {
        use base64::Engine as _;
        let (jid, password) = server.account(name).expect("account");
        let local = jid.split('@').next().unwrap_or(name).to_owned();
        let stream = tokio::net::TcpStream::connect(server.c2s_addr())
            .await
            .expect("tcp");
        let mut raw = RawSocket {
            stream,
            jid: String::new(),
        };
        let header = format!(
            "<?xml version='1.0'?><stream:stream to='{}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
            server.domain()
        );
        raw.write(&header).await;
        raw.read_until("</stream:features>").await;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{local}\0{password}"));
        raw.write(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        raw.read_until("<success").await;
        raw.write(&header).await;
        raw.read_until("</stream:features>").await;
        raw.write(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>raw</resource></bind></iq>",
        )
        .await;
        raw.read_until("</iq>").await;
        raw.write("<presence/>").await;
        raw.jid = format!("{jid}/raw");
        raw
    }

    pub async fn write(&mut self, xml: &str) {
        use tokio::io::AsyncWriteExt;
        self.stream
            .write_all(xml.as_bytes())
            .await
            .expect("raw write");
    }

    async fn read_until(&mut self, needle: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        timeout(PATIENCE, async {
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains(needle) {
                let n = self.stream.read(&mut buf).await.expect("raw read");
                assert!(
                    n > 0,
                    "server closed the raw stream: {}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("raw read within the patience window");
        String::from_utf8_lossy(&got).into_owned()
    }
}
