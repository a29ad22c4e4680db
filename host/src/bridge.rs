//! The bridge: one WebSocket per page, between `webxdc.js` and the
//! [`Transport`](crate::transport::Transport).
//!
//! Frames, page → host:
//!
//! * binary `[1, payload…]`: realtime `send`;
//! * text `{"op":"join"}`, `{"op":"leave"}`: the realtime channel;
//! * text `{"op":"update","update":{payload,info,document,summary}}`:
//!   `sendUpdate`;
//! * text `{"op":"listen","id":k,"serial":n}`: `setUpdateListener(cb, n)`.
//!
//! Host → page:
//!
//! * binary `[1, payload…]`: a realtime payload from another peer;
//! * text `{"op":"update","id":k,"serial":s,"max_serial":m,"update":{…}}`,
//!   then `{"op":"replayed","id":k}` once every update past `n` was given;
//! * text `{"op":"error","about":…,"message":…}`, `{"op":"lagged",…}`,
//!   `{"op":"notice",…}`;
//! * text `{"op":"left","reason":…}`: the page's channel is gone without
//!   the page leaving it (the join was refused, or the transport ended the
//!   channel): the page's channel object is left from then on, and a new
//!   join may follow.
//!
//! The bridge checks the contract again (payload size, double join, send
//! after leave) with the library's words: `webxdc.js` checks first so the
//! app gets an exception, but a page may write to the socket itself.
//!
//! One page per origin is connected at a time: a new page (a reload, a
//! second tab) takes over and the old one is closed after its channel is
//! left, so the new page's join never collides with the old page's channel.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::server::OriginState;
use crate::transport::{Realtime, RealtimeEvent, TransportError, Update, MAX_PAYLOAD};

/// The largest frame a page may send: a realtime payload plus its tag, or
/// an update (its JSON text may be up to 128000 bytes, its other fields
/// add some).
pub(crate) const MAX_FRAME: usize = 1 << 20;

/// The tag of realtime payload frames.
const TAG_REALTIME: u8 = 1;

/// Updates sent to a page in one go before the bridge looks at other work.
const UPDATE_BATCH: usize = 64;

/// The connected page of an origin, as seen by the next page.
pub(crate) struct PageSlot {
    kick: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl PageSlot {
    /// Closes that page's bridge and waits until its channel is left.
    pub(crate) async fn replace(self) {
        let _ = self.kick.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.done).await;
    }
}

/// What a page may write as text.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum PageMessage {
    Join,
    Leave,
    Update { update: PageUpdate },
    Listen { id: u64, serial: u64 },
}

#[derive(Deserialize)]
struct PageUpdate {
    payload: serde_json::Value,
    info: Option<String>,
    document: Option<String>,
    summary: Option<String>,
}

/// Where a page's update listener stands.
struct Listen {
    id: u64,
    /// Index of the next update to give (serial − 1).
    next: usize,
    /// Whether `replayed` was sent.
    replayed: bool,
}

enum Next {
    Kicked,
    Stopping,
    Page(Option<Result<Message, axum::Error>>),
    Realtime(Option<RealtimeEvent>),
    Work,
}

/// Runs the bridge of a page that connected with the right secret and
/// origin, until the page goes, another takes over, or the origin stops.
pub(crate) async fn connected(socket: WebSocket, state: Arc<OriginState>) {
    let (kick, kicked) = oneshot::channel();
    let (done, done_rx) = oneshot::channel::<()>();
    {
        let mut page = state.page.lock().await;
        if let Some(old) = page.take() {
            old.replace().await;
        }
        *page = Some(PageSlot {
            kick,
            done: done_rx,
        });
    }
    run(socket, &state, kicked).await;
    drop(done); // tells a page that waits to take over
}

async fn run(mut socket: WebSocket, state: &OriginState, mut kicked: oneshot::Receiver<()>) {
    let mut channel: Option<Box<dyn Realtime>> = None;
    let mut listen: Option<Listen> = None;
    let mut changes = state.updates.subscribe();
    let mut stopping = state.stopping.clone();
    loop {
        let more = match send_updates(&mut socket, state, &mut listen).await {
            Ok(more) => more,
            Err(()) => break,
        };
        let next = tokio::select! {
            biased;
            _ = &mut kicked => Next::Kicked,
            _ = stopping.wait_for(|s| *s) => Next::Stopping,
            m = socket.recv() => Next::Page(m),
            ev = next_realtime(&mut channel) => Next::Realtime(ev),
            _ = changes.changed() => Next::Work,
            _ = std::future::ready(()), if more => Next::Work,
        };
        let ok = match next {
            Next::Kicked => {
                close(&mut socket, "another page of this app took over").await;
                false
            }
            Next::Stopping => {
                close(&mut socket, "the host stopped serving this app").await;
                false
            }
            Next::Page(None) | Next::Page(Some(Err(_))) => false,
            Next::Page(Some(Ok(msg))) => {
                handle_page(&mut socket, state, &mut channel, &mut listen, msg).await
            }
            Next::Realtime(ev) => forward_realtime(&mut socket, &mut channel, ev).await,
            Next::Work => true,
        };
        if !ok {
            break;
        }
    }
    if let Some(mut ch) = channel.take() {
        ch.leave();
    }
}

async fn next_realtime(channel: &mut Option<Box<dyn Realtime>>) -> Option<RealtimeEvent> {
    match channel {
        Some(ch) => ch.recv().await,
        None => std::future::pending().await,
    }
}

/// Gives the page the updates it has not seen yet; `Ok(true)` when more
/// are waiting. While the past updates are still being read the replay
/// waits for them, so that it holds every past update.
async fn send_updates(
    socket: &mut WebSocket,
    state: &OriginState,
    listen: &mut Option<Listen>,
) -> Result<bool, ()> {
    let Some(l) = listen else {
        return Ok(false);
    };
    let slice = state.updates.slice(l.next, UPDATE_BATCH);
    if !slice.past_done && !l.replayed {
        return Ok(false);
    }
    for update in &slice.updates {
        l.next += 1;
        let text = format!(
            r#"{{"op":"update","id":{},"serial":{},"max_serial":{},"update":{}}}"#,
            l.id, l.next, slice.max_serial, update
        );
        send_text(socket, text).await?;
    }
    if !l.replayed && l.next >= slice.max_serial {
        l.replayed = true;
        send_text(socket, format!(r#"{{"op":"replayed","id":{}}}"#, l.id)).await?;
    }
    Ok(l.next < slice.max_serial)
}

/// Handles one frame from the page; `false` ends the connection.
async fn handle_page(
    socket: &mut WebSocket,
    state: &OriginState,
    channel: &mut Option<Box<dyn Realtime>>,
    listen: &mut Option<Listen>,
    msg: Message,
) -> bool {
    match msg {
        Message::Binary(frame) => {
            let Some((&TAG_REALTIME, data)) = frame.split_first() else {
                return report(socket, "bridge", "unknown binary frame").await;
            };
            // The same checks, in the same order, as the library's send:
            // nothing leaves the host when one fails.
            let result = if data.len() > MAX_PAYLOAD {
                Err(TransportError::TooLarge { size: data.len() })
            } else {
                match channel {
                    Some(ch) => ch.send(data).await,
                    None => Err(TransportError::Left),
                }
            };
            match result {
                Ok(()) => true,
                Err(e) => report(socket, "realtime", &e.to_string()).await,
            }
        }
        Message::Text(text) => {
            let parsed: PageMessage = match serde_json::from_str(text.as_str()) {
                Ok(m) => m,
                Err(e) => return report(socket, "bridge", &format!("bad message: {e}")).await,
            };
            match parsed {
                PageMessage::Join => {
                    if channel.is_some() {
                        let e = TransportError::AlreadyJoined;
                        return report(socket, "join", &e.to_string()).await;
                    }
                    match state.transport.join(&state.instance) {
                        Ok(ch) => {
                            *channel = Some(ch);
                            true
                        }
                        Err(e) => {
                            let why = e.to_string();
                            report(socket, "join", &why).await && gone(socket, &why).await
                        }
                    }
                }
                PageMessage::Leave => {
                    if let Some(mut ch) = channel.take() {
                        ch.leave();
                    }
                    true
                }
                PageMessage::Update { update } => {
                    let update = Update {
                        payload: update.payload.to_string(),
                        info: update.info,
                        document: update.document,
                        summary: update.summary,
                    };
                    match state.transport.send_update(&state.instance, &update).await {
                        Ok(()) => true,
                        Err(e) => report(socket, "sendUpdate", &e.to_string()).await,
                    }
                }
                PageMessage::Listen { id, serial } => {
                    *listen = Some(Listen {
                        id,
                        next: usize::try_from(serial).unwrap_or(usize::MAX),
                        replayed: false,
                    });
                    true
                }
            }
        }
        Message::Close(_) => false,
        Message::Ping(_) | Message::Pong(_) => true,
    }
}

/// Forwards what the channel received; `false` ends the connection.
async fn forward_realtime(
    socket: &mut WebSocket,
    channel: &mut Option<Box<dyn Realtime>>,
    ev: Option<RealtimeEvent>,
) -> bool {
    let sent = match ev {
        Some(RealtimeEvent::Data(data)) => {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(TAG_REALTIME);
            frame.extend_from_slice(&data);
            socket.send(Message::Binary(frame.into())).await
        }
        Some(RealtimeEvent::Lagged(n)) => {
            let text = serde_json::json!({"op": "lagged", "dropped": n}).to_string();
            socket.send(Message::Text(text.into())).await
        }
        Some(RealtimeEvent::Notice(message)) => {
            let text = serde_json::json!({"op": "notice", "message": message}).to_string();
            socket.send(Message::Text(text.into())).await
        }
        None => {
            // The transport ended the channel (the room was left, the
            // client shut down): the page's sends now get "left".
            *channel = None;
            let why = "the realtime channel ended";
            return report(socket, "realtime", why).await && gone(socket, why).await;
        }
    };
    sent.is_ok()
}

async fn send_text(socket: &mut WebSocket, text: String) -> Result<(), ()> {
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())
}

/// Tells the page about an error; `false` if the page is gone.
async fn report(socket: &mut WebSocket, about: &str, message: &str) -> bool {
    let text = serde_json::json!({"op": "error", "about": about, "message": message}).to_string();
    send_text(socket, text).await.is_ok()
}

/// Tells the page that its channel is gone; `false` if the page is gone.
async fn gone(socket: &mut WebSocket, reason: &str) -> bool {
    let text = serde_json::json!({"op": "left", "reason": reason}).to_string();
    send_text(socket, text).await.is_ok()
}

async fn close(socket: &mut WebSocket, reason: &'static str) {
    let frame = CloseFrame {
        code: 4000,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
