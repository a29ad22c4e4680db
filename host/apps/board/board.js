// A drawing board with live cursors: every stroke and every cursor move
// goes to the others over the realtime channel (JSON in the payload).
// Nothing is stored: someone who opens the board later asks the others
// ("hi") and gets the recent strokes from them.
"use strict";

const canvas = document.getElementById("board");
const ctx = canvas.getContext("2d");
const enc = new TextEncoder();
const dec = new TextDecoder();
const COLORS = ["#e63946", "#2a9d8f", "#f4a261", "#457b9d", "#9b5de5", "#06a77d", "#ef476f"];
const KEEP = 1000; // strokes kept for late joiners

function colorOf(addr) {
  let h = 0;
  for (const c of addr) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

const me = { name: window.webxdc.selfName, color: colorOf(window.webxdc.selfAddr) };
document.getElementById("me").innerHTML = `<span class="dot" style="background:${me.color}"></span>${escape(me.name)} (you)`;

const strokes = []; // {color, pts: [[x,y],…]} in canvas pixels
const peers = new Map(); // name -> {color, el, seen}

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const channel = window.webxdc.joinRealtimeChannel();
channel.setListener((bytes) => {
  let msg;
  try {
    msg = JSON.parse(dec.decode(bytes));
  } catch (e) {
    return;
  }
  onMessage(msg);
});

function send(msg) {
  const bytes = enc.encode(JSON.stringify(msg));
  if (bytes.length <= 128000) channel.send(bytes);
}

function onMessage(m) {
  if (m.from) peer(m.from, m.color);
  switch (m.t) {
    case "cursor":
      moveCursor(m.from, m.x, m.y);
      break;
    case "stroke":
      addStroke({ color: m.color, pts: m.pts }, false);
      break;
    case "clear":
      clearBoard(false);
      break;
    case "hi":
      send({ t: "state", from: me.name, color: me.color, strokes: strokes.slice(-200) });
      break;
    case "state":
      if (strokes.length === 0) for (const s of m.strokes || []) addStroke(s, false);
      break;
  }
}

function peer(name, color) {
  let p = peers.get(name);
  if (!p) {
    const el = document.createElement("div");
    el.className = "cursor";
    el.innerHTML =
      `<svg width="18" height="22" viewBox="0 0 18 22"><path d="M1 1 L1 19 L6 14 L10 21 L13 19.5 L9 13 L16 13 Z" fill="${color}" stroke="#fff" stroke-width="1.5"/></svg>` +
      `<span style="background:${color}">${escape(name)}</span>`;
    el.style.display = "none";
    document.getElementById("cursors").appendChild(el);
    p = { color, el };
    peers.set(name, p);
    renderPeers();
  }
  return p;
}

function renderPeers() {
  document.getElementById("peers").innerHTML = [...peers.entries()]
    .map(([n, p]) => `<span class="dot" style="background:${p.color}"></span>${escape(n)}`)
    .join(" ");
}

function moveCursor(name, x, y) {
  const p = peers.get(name);
  if (!p) return;
  const scale = canvas.getBoundingClientRect().width / canvas.width;
  p.el.style.display = "block";
  p.el.style.left = `${x * scale}px`;
  p.el.style.top = `${y * scale}px`;
}

function drawStroke(s) {
  ctx.strokeStyle = s.color;
  ctx.lineWidth = 5;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  s.pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (s.pts.length === 1) ctx.lineTo(s.pts[0][0] + 0.1, s.pts[0][1]);
  ctx.stroke();
}

function addStroke(s, mine) {
  if (!Array.isArray(s.pts) || s.pts.length === 0) return;
  strokes.push(s);
  if (strokes.length > KEEP) strokes.shift();
  drawStroke(s);
  if (mine) send({ t: "stroke", from: me.name, color: s.color, pts: s.pts });
}

function clearBoard(mine) {
  strokes.length = 0;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (mine) send({ t: "clear", from: me.name, color: me.color });
}

// ----- drawing with the pointer ------------------------------------------------
let current = null;
function point(ev) {
  const r = canvas.getBoundingClientRect();
  return [Math.round(((ev.clientX - r.left) * canvas.width) / r.width), Math.round(((ev.clientY - r.top) * canvas.height) / r.height)];
}
let lastCursor = 0;
canvas.addEventListener("pointermove", (ev) => {
  const [x, y] = point(ev);
  const now = Date.now();
  if (now - lastCursor > 30) {
    lastCursor = now;
    send({ t: "cursor", from: me.name, color: me.color, x, y });
  }
  if (current) {
    const last = current.pts[current.pts.length - 1];
    ctx.strokeStyle = me.color;
    ctx.lineWidth = 5;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(last[0], last[1]);
    ctx.lineTo(x, y);
    ctx.stroke();
    current.pts.push([x, y]);
  }
});
canvas.addEventListener("pointerdown", (ev) => {
  canvas.setPointerCapture(ev.pointerId);
  current = { color: me.color, pts: [point(ev)] };
});
canvas.addEventListener("pointerup", () => {
  if (current) {
    const s = current;
    current = null;
    strokes.push(s);
    send({ t: "stroke", from: me.name, color: s.color, pts: s.pts });
  }
});
document.getElementById("clear").addEventListener("click", () => clearBoard(true));

send({ t: "hi", from: me.name, color: me.color });

// For tests and demos: draw and point without a mouse.
window.board = {
  stroke(pts) {
    addStroke({ color: me.color, pts }, true);
  },
  cursor(x, y) {
    send({ t: "cursor", from: me.name, color: me.color, x, y });
  },
  hello() {
    send({ t: "hi", from: me.name, color: me.color });
  },
  strokes: () => strokes.length,
  peers: () => [...peers.keys()],
};
