// The realtime contract checked from inside a page, with two members.
//
// The two pages coordinate through the realtime channel itself: control
// messages are payloads that start with "CTL:" followed by JSON; the test
// payloads of the cases never start so. Before each case both pages meet
// at a barrier (each sends "sync" until it hears the other's), and data
// older than the other's barrier message is dropped, so one case's
// leftovers never leak into the next. Member 0 is the page with the
// smaller random nonce.
//
// Case names are the Rust suite's (spec-tests) where the rule is the same;
// the page-only rules (listeners, update serials, the API's shape) have
// names of their own. Results: window.conformance = {done, results}, and
// the table in the page.
"use strict";

const WAIT = 10000; // how long a case waits for an expected payload
const QUIET = 800; // how long "nothing arrives" is watched
const MAX = 128000;
const enc = new TextEncoder();
const dec = new TextDecoder();
const CTL = enc.encode("CTL:");

const state = {
  nonce: Math.random().toString(36).slice(2) + Date.now().toString(36),
  role: null,
  channel: null,
  queue: [], // {seq, bytes}: test payloads not yet taken
  seq: 0, // payloads received so far
  waiters: [], // functions called on each arrival
  reached: new Set(), // barrier tags this page reached
  seen: new Map(), // tag -> {seq, nonce} of the peer's sync
};

window.conformance = { done: false, results: {}, role: null };

// ----- the channel and its control messages --------------------------------

function isCtl(bytes) {
  return bytes.length >= 4 && CTL.every((b, i) => bytes[i] === b);
}

function onPayload(bytes) {
  if (isCtl(bytes)) {
    let msg;
    try {
      msg = JSON.parse(dec.decode(bytes.subarray(4)));
    } catch (e) {
      return;
    }
    onControl(msg);
  } else {
    state.seq += 1;
    state.queue.push({ seq: state.seq, bytes: new Uint8Array(bytes) });
  }
  for (const w of state.waiters.splice(0)) w();
}

function sendCtl(msg) {
  state.channel.send(enc.encode("CTL:" + JSON.stringify(msg)));
}

function onControl(msg) {
  if (msg.t !== "sync") return;
  if (!state.seen.has(msg.tag)) state.seen.set(msg.tag, { seq: state.seq, nonce: msg.nonce });
  // Answer once, so that a peer whose earlier syncs we had already seen
  // (and so never waited for) still hears from us.
  if (state.reached.has(msg.tag) && !msg.reply) {
    sendCtl({ t: "sync", tag: msg.tag, nonce: state.nonce, reply: true });
  }
}

function join() {
  state.channel = window.webxdc.joinRealtimeChannel();
  state.channel.setListener(onPayload);
}

// Resolves on the next arrival, or after `ms`.
function arrival(ms) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    state.waiters.push(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function barrier(tag, timeout = 30000) {
  state.reached.add(tag);
  const deadline = Date.now() + timeout;
  while (!state.seen.has(tag)) {
    if (Date.now() > deadline) throw new Error(`the other member never reached ${tag}`);
    sendCtl({ t: "sync", tag, nonce: state.nonce });
    await arrival(150);
  }
  const mark = state.seen.get(tag).seq;
  state.queue = state.queue.filter((d) => d.seq > mark);
  return state.seen.get(tag).nonce;
}

// The next test payload, or an error after `ms`.
async function next(what, ms = WAIT) {
  const deadline = Date.now() + ms;
  while (state.queue.length === 0) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`nothing arrived: expected ${what}`);
    await arrival(left);
  }
  return state.queue.shift().bytes;
}

// Nothing arrives for QUIET ms.
async function quiet(what) {
  const deadline = Date.now() + QUIET;
  while (Date.now() < deadline) {
    if (state.queue.length > 0) throw new Error(`${what}: got ${describe(state.queue[0].bytes)}`);
    await arrival(deadline - Date.now());
  }
  if (state.queue.length > 0) throw new Error(`${what}: got ${describe(state.queue[0].bytes)}`);
}

function describe(bytes) {
  const s = dec.decode(bytes.subarray(0, 24));
  return `${bytes.length} bytes ("${s}${bytes.length > 24 ? "…" : ""}")`;
}

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function expect(bytes, what) {
  const got = await next(what);
  if (!same(got, bytes)) throw new Error(`${what}: expected ${describe(bytes)}, got ${describe(got)}`);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function throws(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  return null;
}

function within(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
  ]);
}

// ----- the cases ---------------------------------------------------------------
// Each: {name(s), run(role)}; run throws on failure, returns "skip: why" to
// skip. A case with several names returns {name: null|"skip…"|Error}.

const text = (s) => enc.encode(s);

const cases = [
  {
    name: "api_surface",
    async run() {
      const w = window.webxdc;
      check(typeof w.selfAddr === "string" && w.selfAddr.length > 0, "selfAddr is a non-empty string");
      check(typeof w.selfName === "string" && w.selfName.length > 0, "selfName is a non-empty string");
      check(w.sendUpdateInterval === 10000, "sendUpdateInterval is 10000");
      check(w.sendUpdateMaxSize === 128000, "sendUpdateMaxSize is 128000");
      const all = await within(w.getAllUpdates(), 2000, "getAllUpdates");
      check(Array.isArray(all) && all.length === 0, "getAllUpdates resolves []");
      // sendToChat and importFiles answer (resolve or reject), never hang.
      for (const [name, call] of [
        ["sendToChat", () => w.sendToChat({ text: "hello" })],
        ["importFiles", () => w.importFiles({ extensions: [".txt"] })],
      ]) {
        await within(call().then(() => "ok", (e) => String(e && e.message)), 2000, name);
      }
    },
  },
  {
    name: "double_join_is_an_error",
    async run() {
      const e = throws(() => window.webxdc.joinRealtimeChannel());
      check(e !== null, "a second joinRealtimeChannel() without leave() did not throw");
    },
  },
  {
    name: "two_peers_both_directions",
    async run(role) {
      if (role === 0) {
        state.channel.send(text("hello from 0"));
        await expect(text("hello from 1"), "member 1's payload");
      } else {
        await expect(text("hello from 0"), "member 0's payload");
        state.channel.send(text("hello from 1"));
      }
    },
  },
  {
    name: "no_self_echo",
    async run(role) {
      // Causality: once the other answered y to our x, y must be the first
      // thing we receive.
      if (role === 0) {
        state.channel.send(text("x"));
        await expect(text("y"), "the answer (not our own x)");
      } else {
        await expect(text("x"), "member 0's x");
        state.channel.send(text("y"));
        await quiet("our own y came back");
      }
    },
  },
  {
    name: "exact_bytes_all_256_values",
    async run(role) {
      const all = new Uint8Array(256).map((_, i) => i);
      const rev = all.slice().reverse();
      if (role === 0) {
        state.channel.send(all);
        await expect(rev, "the reversed 256 values");
      } else {
        await expect(all, "the 256 values");
        state.channel.send(rev);
      }
    },
  },
  {
    name: "empty_payload",
    async run(role) {
      if (role === 0) {
        state.channel.send(new Uint8Array(0));
        await expect(text("got it"), "the answer");
      } else {
        await expect(new Uint8Array(0), "an empty payload");
        state.channel.send(text("got it"));
      }
    },
  },
  {
    name: "max_size_payload_round_trip",
    async run(role) {
      const big = new Uint8Array(MAX).map((_, i) => (i * 7 + 3) % 251);
      if (role === 0) {
        state.channel.send(big);
        await expect(big, "128000 bytes back");
      } else {
        await expect(big, "128000 bytes");
        state.channel.send(big);
      }
    },
  },
  {
    name: "oversize_rejected_channel_still_works",
    async run(role) {
      if (role === 0) {
        const e = throws(() => state.channel.send(new Uint8Array(MAX + 1)));
        check(e !== null, "send of 128001 bytes did not throw");
        check(/128001/.test(String(e.message)), `the error names the size: ${e.message}`);
        state.channel.send(text("after"));
        await expect(text("ok"), "the answer");
      } else {
        await expect(text("after"), "the payload after the refused one (and nothing of it)");
        state.channel.send(text("ok"));
      }
    },
  },
  {
    name: "per_sender_order_200",
    async run(role) {
      const n = (i) => new Uint8Array([0, i >> 8, i & 255]);
      if (role === 0) {
        for (let i = 0; i < 200; i++) state.channel.send(n(i));
        await expect(text("done"), "the answer");
      } else {
        for (let i = 0; i < 200; i++) await expect(n(i), `payload ${i} of 200, in order`);
        state.channel.send(text("done"));
      }
    },
  },
  {
    name: "identical_payloads_both_delivered",
    async run(role) {
      if (role === 0) {
        state.channel.send(text("same"));
        state.channel.send(text("same"));
        state.channel.send(text("end"));
      } else {
        await expect(text("same"), "the first copy");
        await expect(text("same"), "the second copy");
        await expect(text("end"), "the end marker");
      }
    },
  },
  {
    name: "set_listener_replaces",
    async run(role) {
      if (role === 0) {
        await expect(text("replaced"), "member 1's listener is set");
        state.channel.send(text("to the new listener"));
        await expect(text("ok"), "the answer");
      } else {
        // The main listener stays registered in `onPayload`; replace it
        // and see that only the new one is called.
        let got = null;
        let old = 0;
        const queued = state.queue.length;
        state.channel.setListener((bytes) => {
          if (!isCtl(bytes)) got = new Uint8Array(bytes);
          else onPayload(bytes); // keep answering barriers
        });
        try {
          state.channel.send(text("replaced"));
          const deadline = Date.now() + WAIT;
          while (got === null && Date.now() < deadline) await arrival(100);
          old = state.queue.length - queued;
        } finally {
          state.channel.setListener(onPayload);
        }
        check(got !== null && dec.decode(got) === "to the new listener", "the new listener got the payload");
        check(old === 0, "the replaced listener was still called");
        state.channel.send(text("ok"));
      }
    },
  },
  {
    names: [
      "leave_stops_delivery_at_once",
      "leave_twice_is_harmless",
      "send_after_leave_is_an_error",
      "join_again_after_leave_works",
    ],
    async run(role) {
      const r = {};
      if (role === 0) {
        await expect(text("leaving"), "member 1 says it leaves");
        for (let i = 0; i < 5; i++) {
          state.channel.send(text("after leave"));
          await arrival(100);
        }
        await barrier("rejoined");
        state.channel.send(text("welcome back"));
        await expect(text("thanks"), "member 1's answer after joining again");
        for (const n of this.names) r[n] = null;
      } else {
        const left = state.channel;
        let late = 0;
        left.setListener((bytes) => {
          if (!isCtl(bytes)) late += 1;
        });
        left.send(text("leaving"));
        left.leave();
        r.leave_twice_is_harmless = throws(() => left.leave());
        const e = throws(() => left.send(text("x")));
        r.send_after_leave_is_an_error = e ? null : new Error("send after leave did not throw");
        // Member 0 sends five payloads now; none may reach the left channel.
        state.queue = [];
        const until = Date.now() + QUIET + 500;
        while (Date.now() < until) await new Promise((res) => setTimeout(res, until - Date.now()));
        r.leave_stops_delivery_at_once = late === 0 ? null : new Error(`${late} payloads after leave`);
        try {
          join();
          await barrier("rejoined");
          await expect(text("welcome back"), "a payload on the new channel");
          state.channel.send(text("thanks"));
          r.join_again_after_leave_works = null;
        } catch (err) {
          r.join_again_after_leave_works = err;
        }
      }
      return r;
    },
  },
  {
    name: "isolation_between_instances_in_one_chat",
    async run() {
      return "skip: an app sees one instance only (the host's tests check two instances)";
    },
  },
  {
    names: ["updates_serials_increase", "update_listener_replays_from_serial"],
    async run(role) {
      const mine = [];
      const run = [state.nonce, state.peerNonce].sort().join("/"); // the same on both pages
      const ours = (u) => u.payload && u.payload.conformance === run;
      const got = [];
      const r = {};
      // The listener sees past updates first (earlier runs in this chat):
      // they are ignored by their run id.
      await window.webxdc.setUpdateListener((u) => {
        if (ours(u)) got.push(u);
      }, 0);
      window.webxdc.sendUpdate({ payload: { conformance: run, from: role }, info: `member ${role}` }, "");
      const deadline = Date.now() + WAIT;
      while (got.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      try {
        check(got.length === 2, `expected both members' updates, got ${got.length}`);
        const [a, b] = got;
        check(new Set(got.map((u) => u.payload.from)).size === 2, "one update from each member");
        check(a.serial > 0 && b.serial > a.serial, `serials increase: ${a.serial}, ${b.serial}`);
        check(b.max_serial >= b.serial, "max_serial >= serial");
        mine.push(a.serial, b.serial);
        r.updates_serials_increase = null;
      } catch (e) {
        r.updates_serials_increase = e;
      }
      try {
        check(mine.length === 2, "needs the serials of the first part");
        const replayed = [];
        await within(
          window.webxdc.setUpdateListener((u) => replayed.push(u), mine[0]),
          WAIT,
          "setUpdateListener's promise",
        );
        check(replayed.length > 0, "nothing was replayed");
        check(replayed.every((u) => u.serial > mine[0]), "only serials above the given one");
        check(replayed.some((u) => u.serial === mine[1]), "the later update is replayed");
        r.update_listener_replays_from_serial = null;
      } catch (e) {
        r.update_listener_replays_from_serial = e;
      }
      window.webxdc.setUpdateListener(() => {}, Number.MAX_SAFE_INTEGER);
      return r;
    },
  },
];

// ----- the runner --------------------------------------------------------------

function record(name, result, detail) {
  window.conformance.results[name] = { result, detail };
  let row = document.querySelector(`tr[data-case="${name}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.case = name;
    row.innerHTML = "<td><code></code></td><td></td><td></td>";
    document.getElementById("results").appendChild(row);
  }
  row.dataset.result = result;
  row.children[0].firstChild.textContent = name;
  row.children[1].textContent = result;
  row.children[2].textContent = detail || "";
}

async function main() {
  const status = document.getElementById("status");
  if (!window.webxdc || typeof window.webxdc.joinRealtimeChannel !== "function") {
    status.textContent = "this host has no realtime channel";
    for (const c of cases) for (const n of c.names || [c.name]) record(n, "skip", "no joinRealtimeChannel");
    finish();
    return;
  }
  join();
  const peer = await barrier("hello", 120000);
  state.peerNonce = peer;
  state.role = state.nonce < peer ? 0 : 1;
  window.conformance.role = state.role;
  status.textContent = `running as member ${state.role}…`;
  for (const [i, c] of cases.entries()) {
    const names = c.names || [c.name];
    try {
      await barrier(`case ${i}`);
    } catch (e) {
      for (const n of names) record(n, "fail", `barrier: ${e.message}`);
      continue;
    }
    let out;
    try {
      out = await c.run(state.role);
    } catch (e) {
      out = e instanceof Error ? e : new Error(String(e));
    }
    for (const n of names) {
      const v = out && typeof out === "object" && !(out instanceof Error) ? out[n] : out;
      if (v === undefined || v === null) record(n, "pass");
      else if (typeof v === "string" && v.startsWith("skip")) record(n, "skip", v.replace(/^skip:\s*/, ""));
      else record(n, "fail", v instanceof Error ? v.message : String(v));
    }
  }
  try {
    await barrier("end");
  } catch (e) {
    /* the results stand */
  }
  finish();
}

function finish() {
  const values = Object.values(window.conformance.results);
  const count = (r) => values.filter((v) => v.result === r).length;
  const line = `passed=${count("pass")} failed=${count("fail")} skipped=${count("skip")}`;
  const summary = document.getElementById("summary");
  summary.textContent = line;
  summary.dataset.done = "1";
  document.getElementById("status").textContent = "done";
  window.conformance.done = true;
}

main().catch((e) => {
  document.getElementById("status").textContent = `stopped: ${e.message}`;
  finish();
});
