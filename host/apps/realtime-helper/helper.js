// A small app on the @webxdc/realtime helper (presence and chunked
// payloads over webxdc.joinRealtimeChannel): what it sees is on the page
// for a person and on window.helper for the host's browser tests.
import { RealTime } from "./realtime.js";

// One realtime message carries at most 128000 bytes; the helper splits a
// larger payload into chunks of 126000 bytes. The wrapper below records
// the size of each message a send puts on the channel, so the test sees
// that a payload went as several messages, each within the limit.
let capture = null;
const rawJoin = window.webxdc.joinRealtimeChannel.bind(window.webxdc);
window.webxdc.joinRealtimeChannel = () => {
  const channel = rawJoin();
  return {
    send(data) {
      if (capture) capture.push(data.byteLength);
      channel.send(data);
    },
    setListener(cb) {
      channel.setListener(cb);
    },
    leave() {
      channel.leave();
    },
  };
};

// The test pattern: the top byte of a multiplicative hash of the index,
// so it never repeats at a chunk boundary (chunks swapped or dropped
// change the checksum). The test computes the same in Rust.
export function pattern(seq, length) {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.imul(i + seq * 7919, 2654435761) >>> 24;
  return out;
}

// 32-bit FNV-1a: order-sensitive, a few lines, the same in Rust.
export function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const helper = {
  deviceId: null,
  peers: [], // {id, addr, name}: as the helper reports them
  received: [], // {from, seq, length, fnv}: a summary, not the bytes
  sent: [], // {seq, length, fnv, messages: [sizes]}
  error: null,
  // Sends `length` bytes of the pattern for `seq` through the helper.
  send(seq, length) {
    const data = pattern(seq, length);
    capture = [];
    try {
      realtime.sendPayload({ seq, data });
    } finally {
      const entry = { seq, length, fnv: fnv1a(data), messages: capture };
      capture = null;
      helper.sent.push(entry);
      render();
    }
  },
};
window.helper = helper;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const hex = (n) => n.toString(16).padStart(8, "0");
function render() {
  document.getElementById("peers").innerHTML = helper.peers
    .map((p) => `<tr><td><code>${escape(p.id)}</code></td><td>${escape(p.addr)}</td><td>${escape(p.name)}</td></tr>`)
    .join("");
  document.getElementById("received").innerHTML = helper.received
    .map((r) => `<tr><td><code>${escape(r.from)}</code></td><td>${r.seq}</td><td>${r.length}</td><td>${hex(r.fnv)}</td></tr>`)
    .join("");
  document.getElementById("sent").innerHTML = helper.sent
    .map((s) => `<tr><td>${s.seq}</td><td>${s.length}</td><td>${hex(s.fnv)}</td><td>${s.messages.join(", ")}</td></tr>`)
    .join("");
}

window.addEventListener("error", (e) => {
  helper.error = String(e.message);
  document.getElementById("error").textContent = helper.error;
});

const realtime = new RealTime({
  // Advertised with every heartbeat: who is behind a device id.
  state: { addr: window.webxdc.selfAddr, name: window.webxdc.selfName },
  onPeersChanged: (peers) => {
    helper.peers = peers.map((p) => ({
      id: p.id,
      addr: p.state && p.state.addr,
      name: p.state && p.state.name,
    }));
    render();
  },
  onPayload: (from, payload) => {
    const data = payload && payload.data;
    if (!(data instanceof Uint8Array)) return;
    helper.received.push({ from, seq: payload.seq, length: data.length, fnv: fnv1a(data) });
    render();
  },
});
helper.deviceId = realtime.getDeviceId();
document.getElementById("me").textContent =
  `${window.webxdc.selfName} <${window.webxdc.selfAddr}>, device ${helper.deviceId}`;
realtime.connect();

let nextSeq = 1;
document.getElementById("send").addEventListener("click", () => helper.send(nextSeq++, 300000));
render();
