//! Two floors: the least any design could cost on this machine, written as
//! harnesses of the conformance suite's trait so that they run exactly the
//! workloads the real backends run.
//!
//! * [`Floor::Direct`] (`tcp-direct`): one TCP hop, A → B. Every member of
//!   an app instance holds one loopback TCP connection to every other
//!   member (a full mesh); a send writes one length-prefixed frame to each.
//!   The best a peer-to-peer design could reach.
//! * [`Floor::Relay`] (`tcp-relay`): A → relay → B. Every member holds one
//!   connection to an in-process relay, which forwards each frame to every
//!   other connection of the same app instance, like a MUC reflects a
//!   groupchat message. The best any server-relayed design could reach.
//!
//! Frames are a 4-byte big-endian length and the payload. Sockets have
//! Nagle off (`TCP_NODELAY`), as a realtime server should. Queues are
//! bounded and apply back-pressure instead of dropping, so the floors never
//! lose data on a healthy machine.
//!
//! A join returns only once every peer (or the relay) has registered the
//! new connection, so a payload sent right after `join` returns reaches
//! the newcomer, as the other backends promise.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex as SyncMutex;
use spec_tests::cases::MAX_PAYLOAD;
use spec_tests::harness::{
    Capabilities, Channel, Harness, HarnessError, JoinFailure, Member, Received, SendFailure,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

/// Largest frame a reader accepts: a corrupt length must not make it
/// allocate gigabytes.
const MAX_FRAME: usize = 1 << 20;
/// Deliveries a channel holds before its reader stops reading (and TCP
/// pushes back on the sender). Same order as the library's inbox (1024).
const INBOX: usize = 1024;
/// Frames the relay holds per outgoing connection before the forwarding
/// reader waits (back-pressure to the sender, like a server that stops
/// reading a client whose peers are slow).
const RELAY_QUEUE: usize = 1024;
/// The byte that acknowledges a registration: written before any frame on
/// the connection.
const ACK: u8 = 0x06;
/// A hang guard for connects and acknowledgements on loopback.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// One TCP hop between every pair of members.
    Direct,
    /// Through an in-process forwarder.
    Relay,
}

/// Joined members of every app instance, by topic (`chat/instance`): the
/// listener address of each (used by [`Floor::Direct`] only).
type Registry = Arc<SyncMutex<HashMap<String, Vec<(u64, SocketAddr)>>>>;

/// A floor harness.
pub struct FloorHarness {
    floor: Floor,
    next_chat: u64,
    next_channel: u64,
    registry: Registry,
    relay: Option<Relay>,
}

/// A chat of a floor: just a number (its members are numbers too).
#[derive(Debug, Clone, Copy)]
pub struct FloorChat {
    id: u64,
    members: usize,
}

impl FloorHarness {
    /// A fresh floor; the relay (for [`Floor::Relay`]) starts on first use.
    pub fn new(floor: Floor) -> Self {
        FloorHarness {
            floor,
            next_chat: 0,
            next_channel: 0,
            registry: Arc::default(),
            relay: None,
        }
    }

    async fn relay_addr(&mut self) -> Result<SocketAddr, HarnessError> {
        if let Some(r) = &self.relay {
            return Ok(r.addr);
        }
        let relay = Relay::start().await.map_err(HarnessError::new)?;
        let addr = relay.addr;
        self.relay = Some(relay);
        Ok(addr)
    }
}

impl Drop for FloorHarness {
    fn drop(&mut self) {
        if let Some(r) = self.relay.take() {
            r.task.abort();
        }
    }
}

impl Harness for FloorHarness {
    type Chat = FloorChat;
    type Channel = FloorChannel;

    fn name(&self) -> String {
        match self.floor {
            Floor::Direct => "tcp-direct".into(),
            Floor::Relay => "tcp-relay".into(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn new_chat(&mut self, members: usize) -> Result<FloorChat, HarnessError> {
        self.next_chat += 1;
        Ok(FloorChat {
            id: self.next_chat,
            members,
        })
    }

    async fn other_chat(&mut self, chat: &FloorChat) -> Result<FloorChat, HarnessError> {
        self.new_chat(chat.members).await
    }

    async fn join(
        &mut self,
        chat: &FloorChat,
        member: Member,
        instance: &str,
    ) -> Result<Result<FloorChannel, JoinFailure>, HarnessError> {
        if member >= chat.members {
            return Err(HarnessError(format!("no member {member}")));
        }
        let topic = format!("{}/{instance}", chat.id);
        self.next_channel += 1;
        let id = self.next_channel;
        let joined = match self.floor {
            Floor::Direct => join_direct(self.registry.clone(), topic, id).await,
            Floor::Relay => {
                let addr = self.relay_addr().await?;
                join_relay(addr, &topic).await
            }
        };
        Ok(joined.map_err(|e| JoinFailure::Other(e.to_string())))
    }

    async fn add_device(&mut self, _: &FloorChat, _: Member) -> Result<Member, HarnessError> {
        Err(HarnessError::new("the floors have no devices"))
    }

    async fn restart(&mut self) -> Result<(), HarnessError> {
        Err(HarnessError::new("the floors have no server to restart"))
    }
}

/// One joined channel of a floor.
pub struct FloorChannel {
    /// The connections a send writes to: one per other member (direct) or
    /// the relay's. Shared with the accept task, which adds newcomers.
    writers: Arc<Mutex<Vec<OwnedWriteHalf>>>,
    inbox: mpsc::Receiver<Vec<u8>>,
    /// Accept and reader tasks, stopped on leave.
    tasks: Arc<SyncMutex<Vec<JoinHandle<()>>>>,
    /// Where to deregister on leave (direct only).
    registration: Option<(Registry, String, u64)>,
    left: bool,
}

impl FloorChannel {
    fn stop(&mut self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        if let Some((registry, topic, id)) = self.registration.take() {
            if let Some(list) = registry.lock().get_mut(&topic) {
                list.retain(|(i, _)| *i != id);
            }
        }
    }
}

impl Drop for FloorChannel {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Channel for FloorChannel {
    async fn send(&mut self, data: &[u8]) -> Result<(), SendFailure> {
        if data.len() > MAX_PAYLOAD {
            return Err(SendFailure::TooLarge);
        }
        if self.left {
            return Err(SendFailure::Left);
        }
        // One buffer, one write per connection: what a tuned implementation
        // would do (two writes would cost a second syscall, and with Nagle
        // off possibly a second segment).
        let frame = frame(data);
        let mut writers = self.writers.lock().await;
        let mut i = 0;
        while i < writers.len() {
            if writers[i].write_all(&frame).await.is_err() {
                // That peer left; the others go on.
                writers.swap_remove(i);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    async fn recv(&mut self, timeout: Duration) -> Received {
        if self.left {
            return Received::Closed;
        }
        match tokio::time::timeout(timeout, self.inbox.recv()).await {
            Ok(Some(data)) => Received::Payload(data),
            Ok(None) => Received::Closed,
            Err(_) => Received::Timeout,
        }
    }

    async fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        self.stop();
        // Dropping the write halves sends FIN: the peers' readers end.
        self.writers.lock().await.clear();
        self.inbox.close();
    }
}

/// A length-prefixed frame.
fn frame(data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + data.len());
    // Payloads are at most MAX_PAYLOAD bytes, so the length fits in u32.
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// Reads one frame; `Ok(None)` on a clean end of stream.
async fn read_frame(r: &mut OwnedReadHalf) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// Reads frames into a channel's inbox until the connection or the inbox
/// ends.
fn spawn_reader(mut r: OwnedReadHalf, inbox: mpsc::Sender<Vec<u8>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(f)) = read_frame(&mut r).await {
            if inbox.send(f).await.is_err() {
                break;
            }
        }
    })
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn read_ack(r: &mut OwnedReadHalf) -> io::Result<()> {
    let mut b = [0u8; 1];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, r.read_exact(&mut b))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no acknowledgement"))??;
    if b[0] != ACK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad acknowledgement",
        ));
    }
    Ok(())
}

// ----- direct -----

async fn join_direct(registry: Registry, topic: String, id: u64) -> io::Result<FloorChannel> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let writers: Arc<Mutex<Vec<OwnedWriteHalf>>> = Arc::default();
    let tasks: Arc<SyncMutex<Vec<JoinHandle<()>>>> = Arc::default();
    let (tx, rx) = mpsc::channel(INBOX);

    // Members that join later connect to us.
    let accept = {
        let writers = writers.clone();
        let tasks = tasks.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if stream.set_nodelay(true).is_err() {
                    continue;
                }
                let (r, mut w) = stream.into_split();
                // The acknowledgement goes out under the writers lock, so
                // no frame of ours can precede it, and the newcomer's join
                // returns only once our sends include it.
                let mut ws = writers.lock().await;
                if w.write_all(&[ACK]).await.is_err() {
                    continue;
                }
                ws.push(w);
                drop(ws);
                tasks.lock().push(spawn_reader(r, tx.clone()));
            }
        })
    };
    tasks.lock().push(accept);

    // We connect to the members already there.
    let existing: Vec<SocketAddr> = registry
        .lock()
        .get(&topic)
        .map(|l| l.iter().map(|(_, a)| *a).collect())
        .unwrap_or_default();
    for peer in existing {
        let (mut r, w) = connect(peer).await?.into_split();
        read_ack(&mut r).await?;
        writers.lock().await.push(w);
        tasks.lock().push(spawn_reader(r, tx.clone()));
    }
    registry
        .lock()
        .entry(topic.clone())
        .or_default()
        .push((id, addr));
    Ok(FloorChannel {
        writers,
        inbox: rx,
        tasks,
        registration: Some((registry, topic, id)),
        left: false,
    })
}

// ----- relay -----

async fn join_relay(relay: SocketAddr, topic: &str) -> io::Result<FloorChannel> {
    let (mut r, mut w) = connect(relay).await?.into_split();
    w.write_all(&frame(topic.as_bytes())).await?;
    read_ack(&mut r).await?;
    let (tx, rx) = mpsc::channel(INBOX);
    let reader = spawn_reader(r, tx);
    Ok(FloorChannel {
        writers: Arc::new(Mutex::new(vec![w])),
        inbox: rx,
        tasks: Arc::new(SyncMutex::new(vec![reader])),
        registration: None,
        left: false,
    })
}

/// Outgoing queues of the relay's connections, by topic.
type Topics = Arc<SyncMutex<HashMap<String, Vec<(u64, mpsc::Sender<Arc<[u8]>>)>>>>;

/// The in-process forwarder.
struct Relay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start() -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let topics: Topics = Arc::default();
        let task = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                next += 1;
                tokio::spawn(relay_connection(stream, next, topics.clone()));
            }
        });
        Ok(Relay { addr, task })
    }
}

/// One client of the relay: registers it under its topic, then forwards
/// each frame it sends to every other connection of the topic.
async fn relay_connection(stream: TcpStream, id: u64, topics: Topics) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let (mut r, w) = stream.into_split();
    let topic = match read_frame(&mut r).await {
        Ok(Some(t)) => String::from_utf8_lossy(&t).into_owned(),
        _ => return,
    };
    let (tx, rx) = mpsc::channel::<Arc<[u8]>>(RELAY_QUEUE);
    // The acknowledgement is the first item of the queue, so it precedes
    // every forwarded frame; registering afterwards cannot reorder that.
    if tx.send(Arc::from(&[ACK][..])).await.is_err() {
        return;
    }
    let writer = tokio::spawn(relay_writer(w, rx));
    topics
        .lock()
        .entry(topic.clone())
        .or_default()
        .push((id, tx));

    loop {
        // The frame is forwarded as received, header included: a relay
        // has no reason to re-encode what it passes on.
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).await.is_err() {
            break;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            break;
        }
        let mut f = vec![0u8; 4 + n];
        f[..4].copy_from_slice(&len);
        if r.read_exact(&mut f[4..]).await.is_err() {
            break;
        }
        let f: Arc<[u8]> = f.into();
        let targets: Vec<mpsc::Sender<Arc<[u8]>>> = topics
            .lock()
            .get(&topic)
            .map(|l| {
                l.iter()
                    .filter(|(i, _)| *i != id)
                    .map(|(_, t)| t.clone())
                    .collect()
            })
            .unwrap_or_default();
        for t in targets {
            // A closed queue is a peer that left.
            let _ = t.send(f.clone()).await;
        }
    }
    if let Some(l) = topics.lock().get_mut(&topic) {
        l.retain(|(i, _)| *i != id);
    }
    writer.abort();
}

/// Writes queued frames to one relay client, coalescing what is queued
/// into one write (what an efficient server does under load; with one
/// frame queued it is one write per frame).
async fn relay_writer(mut w: OwnedWriteHalf, mut rx: mpsc::Receiver<Arc<[u8]>>) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if w.write_all(&buf).await.is_err() {
            break;
        }
    }
}
