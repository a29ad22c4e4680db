// window.webxdc for apps run by webxdc-host. Served at /webxdc.js on the
// app's own origin; the host writes this origin's settings (and its bridge
// secret) into HOST below.
//
// Everything goes through one WebSocket to the same origin (the bridge):
// realtime payloads as binary frames with a 1-byte tag, everything else as
// JSON text. The rules a Rust caller of the library meets (128000 bytes,
// second join, send after leave) are checked here first, synchronously and
// with the same words, so an app sees them as exceptions; the bridge checks
// them again, because a page may talk to the socket directly.
(() => {
  "use strict";
  const HOST = __WEBXDC_HOST_CONFIG__;
  // The limits come from the host (its Rust constants), not from here.
  const MAX_PAYLOAD = HOST.maxPayload;
  const MAX_UPDATE = HOST.maxUpdate;
  const TAG_REALTIME = 1;
  // Payloads that arrive before the app sets a listener, at most this many
  // (oldest dropped, and said so): bounded, like the library's own queue.
  const MAX_EARLY = 1024;
  const MAX_HOST_ERRORS = 100;

  // --- the socket -------------------------------------------------------
  const url = `ws://${location.host}/webxdc-bridge?secret=${encodeURIComponent(HOST.secret)}`;
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const outbox = []; // frames written before the socket opened
  let opened = false;
  let closed = false;
  socket.addEventListener("open", () => {
    opened = true;
    for (const frame of outbox.splice(0)) socket.send(frame);
  });
  socket.addEventListener("close", (ev) => {
    closed = true;
    const why = ev.reason || `code ${ev.code}`;
    console.warn(`webxdc: connection to the host closed (${why})`);
    noteError("bridge", `closed: ${why}`);
  });
  function post(frame) {
    if (closed) throw new Error("webxdc: the connection to the host is closed");
    if (opened) socket.send(frame);
    else outbox.push(frame);
  }
  function postJson(obj) {
    post(JSON.stringify(obj));
  }

  // Errors the host reported (also logged), readable by tests and apps
  // that want them: window.webxdc.hostErrors is not part of the webxdc API.
  const hostErrors = [];
  function noteError(about, message) {
    hostErrors.push({ about, message });
    if (hostErrors.length > MAX_HOST_ERRORS) hostErrors.shift();
  }

  // --- realtime ---------------------------------------------------------
  let channel = null; // the joined channel, until it is left
  let listener = null;
  const early = [];
  let earlyDropped = 0; // since the last report

  function lagged(count, why) {
    const message = `${count} realtime payloads were dropped (${why})`;
    console.warn(`webxdc: ${message}`);
    noteError("realtime", message);
  }

  function deliver(bytes) {
    if (!channel) return; // left: delivery stops at once
    if (listener) {
      try {
        listener(bytes);
      } catch (e) {
        console.error("webxdc: realtime listener threw", e);
      }
    } else {
      if (early.length >= MAX_EARLY) {
        early.shift();
        earlyDropped += 1;
      }
      early.push(bytes);
    }
  }

  function forgetChannel() {
    channel = null;
    listener = null;
    early.length = 0;
    earlyDropped = 0;
  }

  class RealtimeChannel {
    setListener(cb) {
      if (cb !== null && cb !== undefined && typeof cb !== "function") {
        throw new TypeError("setListener needs a function");
      }
      // A channel that was left has no listener to replace: the current
      // channel's (a later join's) is not this one's to change.
      if (channel !== this) return;
      listener = cb || null;
      if (!listener) return;
      if (earlyDropped > 0) {
        lagged(earlyDropped, `more than ${MAX_EARLY} arrived before a listener was set`);
        earlyDropped = 0;
      }
      for (const bytes of early.splice(0)) deliver(bytes);
    }
    send(data) {
      if (!(data instanceof Uint8Array)) {
        throw new TypeError("realtime data must be a Uint8Array");
      }
      // Size first, then "left": the order of the library's and the
      // bridge's checks, so that a page gets the same words.
      if (data.byteLength > MAX_PAYLOAD) {
        throw new Error(
          `payload of ${data.byteLength} bytes exceeds the limit of ${MAX_PAYLOAD} bytes`,
        );
      }
      if (channel !== this) throw new Error("the channel was left");
      const frame = new Uint8Array(data.byteLength + 1);
      frame[0] = TAG_REALTIME;
      frame.set(data, 1);
      post(frame.buffer);
    }
    leave() {
      if (channel !== this) return; // idempotent
      forgetChannel();
      postJson({ op: "leave" });
    }
  }

  // --- status updates ---------------------------------------------------
  let updateListener = null;
  let listenId = 0;
  let replayDone = null; // resolves the promise of setUpdateListener

  // --- frames from the host ---------------------------------------------
  socket.addEventListener("message", (ev) => {
    if (ev.data instanceof ArrayBuffer) {
      const all = new Uint8Array(ev.data);
      if (all.length >= 1 && all[0] === TAG_REALTIME) deliver(all.subarray(1));
      return;
    }
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    switch (msg.op) {
      case "update":
        if (msg.id === listenId && updateListener) {
          const u = msg.update;
          u.serial = msg.serial;
          u.max_serial = msg.max_serial;
          try {
            updateListener(u);
          } catch (e) {
            console.error("webxdc: update listener threw", e);
          }
        }
        break;
      case "replayed":
        if (msg.id === listenId && replayDone) {
          replayDone();
          replayDone = null;
        }
        break;
      case "error":
        console.error(`webxdc: ${msg.about}: ${msg.message}`);
        noteError(msg.about, msg.message);
        break;
      case "left":
        // The join was refused or the chat ended the channel: the page's
        // channel is left too, so its sends throw and a new join works.
        if (channel) forgetChannel();
        break;
      case "lagged":
        lagged(msg.dropped, "the page read too slowly");
        break;
      case "notice":
        console.info(`webxdc: ${msg.message}`);
        break;
    }
  });

  function unsupported(what) {
    return Promise.reject(new Error(`${what} is not supported by this host (webxdc-host)`));
  }

  window.webxdc = {
    selfAddr: HOST.selfAddr,
    selfName: HOST.selfName,
    sendUpdateInterval: 10000,
    sendUpdateMaxSize: MAX_UPDATE,

    sendUpdate(update, _description) {
      if (typeof update !== "object" || update === null || !("payload" in update)) {
        throw new TypeError("sendUpdate needs an object with a payload");
      }
      const payload = JSON.stringify(update.payload);
      if (payload === undefined) throw new TypeError("the update's payload is not JSON");
      const size = new TextEncoder().encode(payload).length;
      if (size > MAX_UPDATE) {
        throw new Error(`status update of ${size} bytes is too large (max ${MAX_UPDATE})`);
      }
      const u = { payload: update.payload };
      for (const k of ["info", "document", "summary"]) {
        if (typeof update[k] === "string") u[k] = update[k];
      }
      postJson({ op: "update", update: u });
    },

    setUpdateListener(cb, serial = 0) {
      updateListener = typeof cb === "function" ? cb : null;
      listenId += 1;
      // A listener set again before its replay ended: the earlier promise
      // resolves now, it would otherwise never resolve.
      if (replayDone) replayDone();
      replayDone = null;
      const done = new Promise((resolve, reject) => {
        replayDone = resolve;
        // Serials are whole numbers from 0; anything else counts from 0.
        const from = Math.max(0, Math.floor(Number(serial))) || 0;
        try {
          postJson({ op: "listen", id: listenId, serial: from });
        } catch (e) {
          replayDone = null;
          reject(e); // the connection to the host is closed: never hang
        }
      });
      return done;
    },

    getAllUpdates() {
      return Promise.resolve([]);
    },

    joinRealtimeChannel() {
      if (channel) {
        throw new Error(
          "already joined this app instance in this chat; leave the other channel first",
        );
      }
      postJson({ op: "join" }); // throws, joining nothing, if the host is gone
      channel = new RealtimeChannel();
      return channel;
    },

    sendToChat(_message) {
      return unsupported("sendToChat (posting files or text into the chat)");
    },

    importFiles(filter = {}) {
      // A file chooser opens only on a user's click; anything else would
      // never answer, and importFiles must not hang.
      if (!navigator.userActivation || !navigator.userActivation.isActive) {
        return Promise.reject(
          new Error("importFiles needs a user gesture (call it from a click handler)"),
        );
      }
      return new Promise((resolve) => {
        const input = document.createElement("input");
        input.type = "file";
        input.multiple = !!filter.multiple;
        input.accept = [...(filter.extensions || []), ...(filter.mimeTypes || [])].join(",");
        input.style.display = "none";
        const finish = (files) => {
          input.remove();
          resolve(files);
        };
        input.addEventListener("change", () => finish([...(input.files || [])]));
        input.addEventListener("cancel", () => finish([]));
        document.body.appendChild(input);
        input.click();
      });
    },

    hostErrors,
  };
})();
