//! A server that refuses to resume the lost session with a
//! `<failed xmlns='urn:xmpp:sm:3'/>` that carries no `h` (XEP-0198 makes it
//! optional; ejabberd sends it so after a restart, and xmpp-parsers 0.23
//! cannot parse it): the client must give up on resuming and bind a new
//! session, instead of trying the same resumption for ever.
//!
//! The server here is a script on a loopback socket, because the failure
//! needs an exact answer at an exact moment that a real server gives only
//! now and then (the ejabberd restart case of the suite hit it in about one
//! run in three).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use webxdc_realtime_xmpp::{Client, ClientEvent, Config, ConnectionEvent};

/// A hang guard only: every step here is a loopback round trip.
const PATIENCE: Duration = Duration::from_secs(20);

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' id='s' from='localhost' version='1.0'>";

/// What the script saw, for the assertions.
#[derive(Default)]
struct Seen {
    resumptions: AtomicUsize,
    bindings: AtomicUsize,
}

/// The client's side of one connection, read as text.
struct Conn {
    socket: TcpStream,
    buf: String,
}

impl Conn {
    /// Reads until one of `patterns` has arrived; returns which, and drops
    /// everything up to the end of it. `None` when the client hung up.
    async fn until(&mut self, patterns: &[&str]) -> Option<(usize, String)> {
        loop {
            let found = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| self.buf.find(p).map(|at| (at + p.len(), i)))
                .min();
            if let Some((end, i)) = found {
                let head: String = self.buf.drain(..end).collect();
                return Some((i, head));
            }
            let mut chunk = [0u8; 4096];
            let n = self.socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    async fn say(&mut self, text: &str) {
        // A client that hung up is seen by the next read.
        let _ = self.socket.write_all(text.as_bytes()).await;
    }

    /// Stream header, SASL PLAIN, stream restart: up to the features that
    /// offer binding and stream management.
    async fn log_in(&mut self) -> Option<()> {
        self.until(&[">"]).await?; // the XML declaration or the header
        if !self.buf.contains("<stream:stream") {
            self.until(&["<stream:stream"]).await?;
        }
        self.until(&[">"]).await?;
        self.say(HEADER).await;
        self.say(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
        self.until(&["</auth>"]).await?;
        self.say("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
        self.until(&["<stream:stream"]).await?;
        self.until(&[">"]).await?;
        self.say(HEADER).await;
        self.say(
            "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <sm xmlns='urn:xmpp:sm:3'/></stream:features>",
        )
        .await;
        Some(())
    }
}

/// The id attribute of the element whose text is `head`.
fn id_of(head: &str) -> String {
    for quote in ['\'', '"'] {
        let key = format!("id={quote}");
        if let Some(at) = head.find(&key) {
            let rest = &head[at + key.len()..];
            if let Some(end) = rest.find(quote) {
                return rest[..end].to_owned();
            }
        }
    }
    panic!("no id in {head:?}");
}

/// One connection: log in, then refuse any resumption (and hang up, as the
/// client then closes), or bind and enable stream management. The first
/// connection that bound a session is closed when `drop_first` fires.
async fn serve(mut conn: Conn, seen: Arc<Seen>, drop_first: Option<oneshot::Receiver<()>>) {
    if conn.log_in().await.is_none() {
        return;
    }
    let Some((what, head)) = conn.until(&["</iq>", "<resume"]).await else {
        return;
    };
    if what == 1 {
        seen.resumptions.fetch_add(1, Ordering::SeqCst);
        conn.until(&["/>", "</resume>"]).await;
        conn.say("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")
            .await;
        // The client either binds on this stream or hangs up.
        let Some((_, head)) = conn.until(&["</iq>"]).await else {
            return;
        };
        return bound(conn, seen, &head, None).await;
    }
    bound(conn, seen, &head, drop_first).await;
}

async fn bound(
    mut conn: Conn,
    seen: Arc<Seen>,
    bind_iq: &str,
    drop_first: Option<oneshot::Receiver<()>>,
) {
    let n = seen.bindings.fetch_add(1, Ordering::SeqCst) + 1;
    let id = id_of(&bind_iq[bind_iq.rfind("<iq").unwrap_or(0)..]);
    conn.say(&format!(
        "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@localhost/r{n}</jid></bind></iq>"
    ))
    .await;
    match drop_first {
        Some(close) => {
            // Enable stream management (so that a resumption follows the
            // loss), then lose the connection when told.
            if conn.until(&["<enable"]).await.is_none() {
                return;
            }
            conn.until(&["/>", "</enable>"]).await;
            conn.say("<enabled xmlns='urn:xmpp:sm:3' id='lost-session' resume='true'/>")
                .await;
            let _ = close.await;
        }
        None => {
            // Keep the session: read until the client goes.
            while conn.until(&["\u{0}"]).await.is_some() {}
        }
    }
}

#[tokio::test]
async fn a_refused_resumption_without_h_ends_in_a_new_session() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let (close_first, first_closed) = oneshot::channel();
    let script = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut drop_first = Some(first_closed);
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let conn = Conn {
                    socket,
                    buf: String::new(),
                };
                tokio::spawn(serve(conn, seen.clone(), drop_first.take()));
            }
        })
    };

    let config = Config::new("alice@localhost".parse().expect("jid"), "secret")
        .danger_plaintext_loopback_only(addr)
        .with_connect_timeout(PATIENCE);
    let client = Client::connect(config).await.expect("first login");
    let mut events = client.events();
    assert_eq!(seen.bindings.load(Ordering::SeqCst), 1);

    // The server goes away under the session.
    let _ = close_first.send(());
    let resumed = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Connection(ConnectionEvent::Reconnected { resumed })) => {
                    return resumed
                }
                Some(_) => continue,
                None => panic!("the client closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no new session within {PATIENCE:?}: {} resumption attempts, {} bindings",
            seen.resumptions.load(Ordering::SeqCst),
            seen.bindings.load(Ordering::SeqCst)
        )
    });
    assert!(!resumed, "the server refused the resumption");
    assert_eq!(
        seen.resumptions.load(Ordering::SeqCst),
        1,
        "the refused resumption is tried once"
    );
    assert_eq!(seen.bindings.load(Ordering::SeqCst), 2, "one new session");
    assert_eq!(client.jid().to_string(), "alice@localhost/r2");
    script.abort();
}
