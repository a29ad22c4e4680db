//! The targets of docs/benchmarks.md, evaluated on a report (reported,
//! not asserted).

use super::format::{bytes, dur, signed_dur};
use super::{Report, Target};

impl Report {
    /// Fills [`Report::targets`] from the results.
    pub fn evaluate_targets(&mut self) {
        let mut t = Vec::new();
        let mut push = |target: &str, backend: &str, measured: String, ratio: Option<f64>| {
            t.push(Target {
                target: target.into(),
                backend: backend.into(),
                measured,
                ratio,
                met: ratio.map(|r| r <= 1.0),
            });
        };
        let relay = self.p50_32("tcp-relay");
        let iroh = self.p50_32("iroh-deltachat");
        // The XMPP floor is not a deployment: it has a target of its own
        // (below), not the servers'.
        let servers = self
            .backends
            .iter()
            .filter(|b| b.name.starts_with("xmpp") && b.name != "xmpp-floor");
        for b in servers {
            let name = b.name.as_str();
            let p50 = self.p50_32(name);
            match (p50, iroh) {
                (Some(x), Some(i)) => push(
                    "32 B p50 ≤ iroh-deltachat's",
                    name,
                    format!("{} vs {}", dur(x), dur(i)),
                    Some(x / i),
                ),
                _ => push("32 B p50 ≤ iroh-deltachat's", name, "-".into(), None),
            }
            match (p50, relay) {
                (Some(x), Some(r)) => push(
                    "32 B p50 ≤ 4 × tcp-relay floor",
                    name,
                    format!("{} = {:.1} × {}", dur(x), x / r, dur(r)),
                    Some(x / (4.0 * r)),
                ),
                _ => push("32 B p50 ≤ 4 × tcp-relay floor", name, "-".into(), None),
            }
            match &b.throughput {
                Ok(tp) => {
                    let rate_ratio = 10_000.0 / tp.delivered_per_s.max(1e-9);
                    push(
                        "≥ 10000 × 1 KiB/s, no loss",
                        name,
                        format!("{:.0}/s, {} lost", tp.delivered_per_s, tp.lost),
                        Some(if tp.lost > 0 {
                            rate_ratio.max(1.01)
                        } else {
                            rate_ratio
                        }),
                    )
                }
                Err(_) => push("≥ 10000 × 1 KiB/s, no loss", name, "-".into(), None),
            }
            let f32 = b
                .fanout
                .iter()
                .filter_map(|f| f.as_ref().ok())
                .find(|f| f.receivers == 32 && f.all_us.n > 0);
            match f32 {
                Some(f) => push(
                    "fan-out to 32, p50 < 5 ms",
                    name,
                    dur(f.all_us.p50),
                    Some(f.all_us.p50 / 5000.0),
                ),
                None => push("fan-out to 32, p50 < 5 ms", name, "-".into(), None),
            }
            match &b.join {
                Ok(j) if j.first_us.n > 0 => push(
                    "join → first delivery < 10 ms",
                    name,
                    format!("p50 {}", dur(j.first_us.p50)),
                    Some(j.first_us.p50 / 10_000.0),
                ),
                _ => push("join → first delivery < 10 ms", name, "-".into(), None),
            }
        }
        if self.backend("xmpp-floor").is_some() {
            // What our client stack costs on a server that costs nothing.
            let target = "xmpp-floor 32 B p50 ≤ 2 × tcp-relay";
            match (self.p50_32("xmpp-floor"), relay) {
                (Some(x), Some(r)) => push(
                    target,
                    "xmpp-floor",
                    format!("{} = {:.1} × {}", dur(x), x / r, dur(r)),
                    Some(x / (2.0 * r)),
                ),
                _ => push(target, "xmpp-floor", "-".into(), None),
            }
        }
        match &self.memory {
            Ok(m) => {
                push(
                    "≤ 64 KiB per joined channel",
                    "library",
                    bytes(m.per_channel_kib * 1024.0),
                    Some(m.per_channel_kib / 64.0),
                );
                push(
                    "≤ 2 MiB per connection",
                    "library",
                    bytes(m.per_connection_kib * 1024.0),
                    Some(m.per_connection_kib / 2048.0),
                );
            }
            Err(_) => {
                push("≤ 64 KiB per joined channel", "library", "-".into(), None);
                push("≤ 2 MiB per connection", "library", "-".into(), None);
            }
        }
        for s in &self.host_rtt {
            let sizes = s.sizes.as_ref().map(Vec::as_slice).unwrap_or_default();
            for z in sizes {
                let target = format!("page to page adds < 0.5 ms p50 ({} B)", z.size);
                match (&z.library, &z.host) {
                    (Ok(l), Ok(h)) if l.us.n > 0 && h.us.n > 0 => {
                        let added = h.us.p50 - l.us.p50;
                        push(
                            &target,
                            &s.server,
                            format!(
                                "{} ({} vs {})",
                                signed_dur(added),
                                dur(h.us.p50),
                                dur(l.us.p50)
                            ),
                            Some(added / 500.0),
                        )
                    }
                    _ => push(&target, &s.server, "-".into(), None),
                }
            }
        }
        for w in self.wire.iter().filter(|w| w.path == "frame") {
            let limit = if w.size <= 32 { 5.0 } else { 200.0 };
            push(
                &format!("encode + decode {} B < {} µs", w.size, limit),
                "library",
                dur(w.us.p50),
                Some(w.us.p50 / limit),
            );
        }
        self.targets = t;
    }
}
