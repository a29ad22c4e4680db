//! The tables, one function per section: workloads 1-5 as one table with
//! a column per backend, then memory (6), the library alone (7), the
//! throttled server (8), the round trip through the host and the targets.

use std::fmt::Write as _;

use super::format::{bytes, cell, dur, err_cell, lost_suffix, signed_dur, summary4};
use super::{BackendReport, Report, Res, ThrottleReport};
use crate::host_rtt::RoundTrip;
use crate::stats::Summary;
use crate::throttle::Role;
use crate::workloads::{Fanout, Latency};

impl Report {
    /// The markdown tables.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        self.backends_table(&mut o);
        self.memory_section(&mut o);
        self.wire_section(&mut o);
        self.throttle_section(&mut o);
        self.host_rtt_section(&mut o);
        self.targets_section(&mut o);
        o
    }

    /// Workloads 1-5: a row per measurement, a column per backend.
    fn backends_table(&self, o: &mut String) {
        let names: Vec<&str> = self.backends.iter().map(|b| b.name.as_str()).collect();
        let _ = writeln!(o, "| workload | {} |", names.join(" | "));
        let _ = writeln!(o, "|---|{}", "---|".repeat(names.len()));
        let mut row = |label: &str, f: &dyn Fn(&BackendReport) -> String| {
            let cells: Vec<String> = self.backends.iter().map(f).collect();
            let _ = writeln!(o, "| {label} | {} |", cells.join(" | "));
        };
        row("1. latency 32 B, p50 / p90 / p99 / max", &|b| {
            cell(&b.latency_32, |l| {
                format!("{}{}", summary4(&l.us), lost_suffix(l.lost))
            })
        });
        row("2. latency 128000 B, p50 / p90 / p99 / max", &|b| {
            cell(&b.latency_128k, |l| {
                format!("{}{}", summary4(&l.us), lost_suffix(l.lost))
            })
        });
        row("3. throughput 1 KiB: delivered/s (lost of sent)", &|b| {
            cell(&b.throughput, |t| {
                format!("{:.0}/s ({} of {})", t.delivered_per_s, t.lost, t.sent)
            })
        });
        let fan_ns = self.fanout_receivers();
        for n in &fan_ns {
            row(
                &format!("4. fan-out to {n}: all have it, p50 / p99"),
                &|b| match fanout_of(b, *n) {
                    Some(f) if f.all_us.n > 0 => format!(
                        "{} / {}{}",
                        dur(f.all_us.p50),
                        dur(f.all_us.p99),
                        lost_suffix(f.lost)
                    ),
                    Some(_) => "no samples".into(),
                    None => b
                        .fanout
                        .iter()
                        .find_map(|f| f.as_ref().err())
                        .map(|e| err_cell(e))
                        .unwrap_or_else(|| "-".into()),
                },
            );
        }
        for n in &fan_ns {
            row(
                &format!("4. fan-out to {n}: sender bytes / loopback bytes per payload"),
                &|b| match fanout_of(b, *n) {
                    Some(f) => format!(
                        "{} / {}",
                        f.sender_bytes
                            .map(|v| bytes(v as f64))
                            .unwrap_or_else(|| "n/a".into()),
                        f.loopback_bytes.map(bytes).unwrap_or_else(|| "n/a".into())
                    ),
                    None => "-".into(),
                },
            );
        }
        row(
            "5. join → first delivery, p50 / p99 (join call p50)",
            &|b| {
                cell(&b.join, |j| {
                    if j.first_us.n == 0 {
                        return format!("no samples ({} failed)", j.failed);
                    }
                    format!(
                        "{} / {} ({}){}",
                        dur(j.first_us.p50),
                        dur(j.first_us.p99),
                        dur(j.join_call_us.p50),
                        lost_suffix(j.failed)
                    )
                })
            },
        );
        self.bulk_rows(&mut row);
        let ratios = [
            ("tcp-relay floor", "tcp-relay", 1),
            ("iroh-deltachat", "iroh-deltachat", 2),
        ];
        for (label, backend, decimals) in ratios {
            let reference = self.p50_32(backend);
            row(
                &format!("32 B p50 ÷ {label}"),
                &|b| match (self.p50_32(&b.name), reference) {
                    (Some(x), Some(r)) if r > 0.0 => format!("{:.*}×", decimals, x / r),
                    _ => "-".into(),
                },
            );
        }
        if self.backend("xmpp-floor").is_some() {
            self.floor_rows(&mut row);
        }
        row("wall time (set-up included)", &|b| {
            format!("{:.1} s", b.wall_s)
        });
    }

    /// What the servers add and what our client stack costs, from
    /// `xmpp-floor` (the same client stack on a minimal in-process XMPP
    /// server): in a server's column that backend − xmpp-floor, in
    /// xmpp-floor's column xmpp-floor − tcp-relay; the ratio beside.
    fn floor_rows(&self, row: &mut Row<'_>) {
        fn p50(l: &Res<Latency>) -> Option<f64> {
            l.as_ref().ok().filter(|l| l.us.n > 0).map(|l| l.us.p50)
        }
        fn lat32(b: &BackendReport) -> Option<f64> {
            p50(&b.latency_32)
        }
        fn lat128k(b: &BackendReport) -> Option<f64> {
            p50(&b.latency_128k)
        }
        fn rate(b: &BackendReport) -> Option<f64> {
            b.throughput
                .as_ref()
                .ok()
                .map(|t| t.delivered_per_s)
                .filter(|r| *r > 0.0)
        }
        // The backend each column is measured against.
        let reference = |b: &BackendReport| match b.name.as_str() {
            "xmpp-floor" => self.backend("tcp-relay"),
            n if n.starts_with("xmpp-") => self.backend("xmpp-floor"),
            _ => None,
        };
        let whom = "server (column − xmpp-floor); our client stack (xmpp-floor − tcp-relay)";
        let latencies: [(&str, Getter); 2] = [
            ("1. latency 32 B p50", lat32),
            ("2. latency 128000 B p50", lat128k),
        ];
        for (label, get) in latencies {
            row(&format!("{label}, added by the {whom}"), &|b| match (
                get(b),
                reference(b).and_then(get),
            ) {
                (Some(x), Some(r)) if r > 0.0 => {
                    format!("{} ({:.1}×)", signed_dur(x - r), x / r)
                }
                _ => "-".into(),
            });
        }
        row(
            "3. throughput 1 KiB, delivered/s ÷ the same reference: server (column ÷ \
             xmpp-floor); our client stack (xmpp-floor ÷ tcp-relay)",
            &|b| match (rate(b), reference(b).and_then(rate)) {
                (Some(x), Some(r)) => format!("{:.2}×", x / r),
                _ => "-".into(),
            },
        );
    }

    /// Workload 10's rows: the transfer, then the small payloads beside
    /// their idle latency.
    fn bulk_rows(&self, row: &mut Row<'_>) {
        let Some(first) = self.backends.iter().find_map(|b| b.bulk.as_ref().ok()) else {
            if !self.backends.is_empty() {
                row("10. bulk transfer", &|b| cell(&b.bulk, |_| "-".into()));
            }
            return;
        };
        row(
            &format!(
                "10. bulk {} MB in {} B chunks to 2: MB/s (time; chunks in order and intact)",
                first.total_bytes as f64 / 1e6,
                first.chunk_bytes
            ),
            &|b| {
                cell(&b.bulk, |k| {
                    format!(
                        "{:.1} MB/s ({:.2} s; {} and {} of {}{}{})",
                        k.mb_per_s,
                        k.seconds,
                        k.received[0],
                        k.received[1],
                        k.chunks,
                        if k.bad > 0 {
                            format!(", {} bad", k.bad)
                        } else {
                            String::new()
                        },
                        if k.lagged > 0 {
                            format!(", {} lagged", k.lagged)
                        } else {
                            String::new()
                        },
                    )
                })
            },
        );
        let small = |s: &Summary, idle: &Summary, lost: u64, extra: String| {
            if s.n == 0 {
                return format!("no samples{extra}");
            }
            format!(
                "{} / {} (idle {} / {}){}{extra}",
                dur(s.p50),
                dur(s.max),
                dur(idle.p50),
                dur(idle.max),
                lost_suffix(lost as usize)
            )
        };
        row(
            "10. meanwhile 32 B, same sender, other instance: p50 / max (idle p50 / max)",
            &|b| {
                cell(&b.bulk, |k| {
                    small(
                        &k.same_sender_us,
                        &k.idle_same_sender_us,
                        k.small_lost[0],
                        format!(
                            "; {} of {} before the last chunk",
                            k.same_sender_before_last_chunk, k.small_sent[0]
                        ),
                    )
                })
            },
        );
        row(
            "10. meanwhile 32 B, another member: p50 / max (idle p50 / max)",
            &|b| {
                cell(&b.bulk, |k| {
                    small(
                        &k.other_member_us,
                        &k.idle_other_member_us,
                        k.small_lost[1],
                        String::new(),
                    )
                })
            },
        );
    }

    /// The numbers of receivers any backend measured fan-out for, in the
    /// order first seen.
    fn fanout_receivers(&self) -> Vec<usize> {
        let mut ns = Vec::new();
        let measured = self.backends.iter().flat_map(|b| &b.fanout).flatten();
        for f in measured {
            if !ns.contains(&f.receivers) {
                ns.push(f.receivers);
            }
        }
        ns
    }

    /// Workload 6.
    fn memory_section(&self, o: &mut String) {
        heading(o, "**6. Memory (XMPP via Prosody, VmRSS deltas)**");
        let m = match &self.memory {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(o, "{}", err_cell(e));
                return;
            }
        };
        table_header(o, &["what", "added per unit"]);
        let mut row = |what: String, kib: f64| {
            let _ = writeln!(o, "| {what} | {} |", bytes(kib * 1024.0));
        };
        row(
            format!(
                "per connection (client side, {} connections)",
                m.connections
            ),
            m.per_connection_kib,
        );
        if let Some(s) = m.server_per_connection_kib {
            row("per connection (Prosody's VmRSS)".into(), s);
        }
        row(
            format!("per entered room ({} rooms, one connection)", m.rooms),
            m.per_room_kib,
        );
        row(
            format!(
                "per joined channel ({} channels, one connection)",
                m.channels
            ),
            m.per_channel_kib,
        );
    }

    /// Workload 7.
    fn wire_section(&self, o: &mut String) {
        heading(o, "**7. Library cost alone (no network)**");
        table_header(
            o,
            &[
                "path",
                "payload",
                "p50 per op",
                "min",
                "instructions per op (callgrind)",
            ],
        );
        for w in &self.wire {
            let _ = writeln!(
                o,
                "| {} | {} B | {} | {} | {} |",
                w.path,
                w.size,
                dur(w.us.p50),
                dur(w.us.min),
                w.instructions
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
        if !self.callgrind_note.is_empty() {
            let _ = writeln!(o, "\n{}", self.callgrind_note);
        }
    }

    /// Workload 8: a row per server configuration, each ratio against
    /// the generated configuration of the same server (its first row).
    fn throttle_section(&self, o: &mut String) {
        if self.throttle.is_empty() {
            return;
        }
        heading(
            o,
            "**8. Server configurations (Prosody and ejabberd, same library)**",
        );
        table_header(
            o,
            &[
                "configuration",
                "32 B latency p50 / p99",
                "fan-out to 32 p50 / p99",
                "128000 B latency p50 / max",
                "1 KiB: delivered/s, sent/s (lost of sent)",
                "send().await p50 / max",
                "client events",
                "RSS start → max → end",
                "load",
            ],
        );
        for t in &self.throttle {
            let base = self
                .throttle
                .iter()
                .find(|b| b.server == t.server && b.role == Role::Baseline)
                .filter(|b| !std::ptr::eq(*b, t));
            // " (0.93×)" against the baseline, where both were measured.
            let ratio = |get: &dyn Fn(&ThrottleReport) -> Option<f64>| -> String {
                match (get(t), base.and_then(get)) {
                    (Some(v), Some(b)) if b > 0.0 => format!(" ({:.2}×)", v / b),
                    _ => String::new(),
                }
            };
            let p50_32 = |r: &ThrottleReport| {
                r.latency_32
                    .as_ref()
                    .ok()
                    .filter(|l| l.us.n > 0)
                    .map(|l| l.us.p50)
            };
            let p50_fan = |r: &ThrottleReport| {
                r.fanout_32
                    .as_ref()
                    .ok()
                    .filter(|f| f.all_us.n > 0)
                    .map(|f| f.all_us.p50)
            };
            let p50_large = |r: &ThrottleReport| {
                r.latency_128k
                    .as_ref()
                    .ok()
                    .filter(|l| l.us.n > 0)
                    .map(|l| l.us.p50)
            };
            let rate = |r: &ThrottleReport| r.throughput.as_ref().ok().map(|x| x.delivered_per_s);
            let lat32 = latency_cell(&t.latency_32, |l| {
                format!("{}{} / {}", dur(l.us.p50), ratio(&p50_32), dur(l.us.p99))
            });
            let fan = cell(&t.fanout_32, |f| {
                if f.all_us.n == 0 {
                    format!("no samples{}", lost_suffix(f.lost))
                } else {
                    format!(
                        "{}{} / {}{}",
                        dur(f.all_us.p50),
                        ratio(&p50_fan),
                        dur(f.all_us.p99),
                        lost_suffix(f.lost)
                    )
                }
            });
            let lat = latency_cell(&t.latency_128k, |l| {
                format!(
                    "{}{} / {} (n={})",
                    dur(l.us.p50),
                    ratio(&p50_large),
                    dur(l.us.max),
                    l.us.n
                )
            });
            let tp = cell(&t.throughput, |x| {
                format!(
                    "{:.0}/s{}, {:.0}/s ({} of {}{})",
                    x.delivered_per_s,
                    ratio(&rate),
                    x.sent_per_s,
                    x.lost,
                    x.sent,
                    match (x.drain_gave_up, x.send_blocked_at_end) {
                        (true, true) => ", rest still queued; a send was parked at the end",
                        (true, false) => ", rest still queued",
                        (false, true) => ", a send was parked at the end",
                        _ => "",
                    }
                )
            });
            let waits = cell(&t.throughput, |x| {
                format!("{} / {}", dur(x.send_wait_us.p50), dur(x.send_wait_us.max))
            });
            let e = &t.events;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | disconnected {}, reconnected {}, reconnect failed {}, closed {} | {} → {} → {} MiB | {} |",
                t.label,
                lat32,
                fan,
                lat,
                tp,
                waits,
                e.disconnected,
                e.reconnected,
                e.reconnect_failed,
                e.closed,
                t.rss_start_kib / 1024,
                t.rss_max_kib / 1024,
                t.rss_end_kib / 1024,
                t.load
            );
        }
        let _ = writeln!(
            o,
            "\nEach row is one server configuration: the generated one (what `xmpp-test-server` \
             writes, our recommendation) with one setting changed, Debian's stock throttling as a \
             reference, the winners combined (best), and the generated one again at the end (its \
             distance from the first row is the run's noise). (N×) is the ratio to the same \
             server's generated configuration: below 1 is better for latency, above 1 for \
             delivered/s. Load: the machine's load average (1, 5, 15 min) when the row started. The settings of each row are in the JSON (`config_edits`)."
        );
    }

    /// Page to page through the host, beside the library: a row per
    /// server and payload size.
    fn host_rtt_section(&self, o: &mut String) {
        if self.host_rtt.is_empty() {
            return;
        }
        heading(o, "**Through the host (page to page)**");
        table_header(
            o,
            &[
                "server",
                "payload",
                "library round trip p50 / p99",
                "page to page p50 / p99",
                "host − library, p50 / p99",
                "host ÷ library, p50 / p99",
            ],
        );
        for s in &self.host_rtt {
            let sizes = match &s.sizes {
                Ok(sizes) => sizes,
                Err(e) => {
                    let _ = writeln!(o, "| {} | - | {} | | | |", s.server, err_cell(e));
                    continue;
                }
            };
            for z in sizes {
                let (diff, ratio) = match measured_pair(&z.library, &z.host) {
                    Some((l, h)) => (
                        format!(
                            "{} / {}",
                            signed_dur(h.p50 - l.p50),
                            signed_dur(h.p99 - l.p99)
                        ),
                        format!("{:.2}× / {:.2}×", h.p50 / l.p50, h.p99 / l.p99),
                    ),
                    None => ("-".into(), "-".into()),
                };
                let _ = writeln!(
                    o,
                    "| {} | {} B | {} | {} | {} | {} |",
                    s.server,
                    z.size,
                    round_trip_cell(&z.library),
                    round_trip_cell(&z.host),
                    diff,
                    ratio
                );
            }
        }
        let clock = self
            .host_rtt
            .iter()
            .find_map(|s| s.page_clock)
            .map(|c| {
                format!(
                    "whose performance.now() steps by {}, {}cross-origin isolated",
                    dur(c.step_us),
                    if c.cross_origin_isolated { "" } else { "not " }
                )
            })
            .unwrap_or_else(|| "performance.now()".into());
        let _ = writeln!(
            o,
            "\nRound trips, one payload in flight, back to back, the paths taking turns of \
             {} round trips. Library: two clients of the library on the server, one sending back \
             what it receives. Page to page: a pinger page and an echo page in two headless \
             Chromiums, each served by a host of its own (`Origin::serve` over an \
             `XmppTransport`) on two more accounts of the same server, timed in the pinger page \
             ({clock}). Host − library is what the two hosts add to a round trip: four WebSocket \
             crossings, four passes through a bridge, the pages' JavaScript; the target is \
             < 0.5 ms at p50 (see Targets).",
            crate::host_rtt::BLOCK
        );
        let _ = writeln!(
            o,
            "\nWhere the hosts' time goes, in the same turns: sockets are WebSocket clients of \
             the benchmark process speaking the bridge protocol in place of the pages, through \
             two hosts on two more accounts of the same server (the hosts without a browser); \
             in-process, the same pages and sockets through hosts on the host's in-memory \
             transport (no server).\n"
        );
        table_header(
            o,
            &[
                "server",
                "payload",
                "sockets p50 / p99",
                "sockets − library, p50",
                "page to page − sockets, p50",
                "in-process: pages p50 / p99",
                "in-process: sockets p50 / p99",
            ],
        );
        let p50_diff = |a: &Res<RoundTrip>, b: &Res<RoundTrip>| {
            measured_pair(a, b)
                .map(|(a, b)| signed_dur(b.p50 - a.p50))
                .unwrap_or_else(|| "-".into())
        };
        for s in &self.host_rtt {
            for z in s.sizes.as_ref().map(Vec::as_slice).unwrap_or_default() {
                let _ = writeln!(
                    o,
                    "| {} | {} B | {} | {} | {} | {} | {} |",
                    s.server,
                    z.size,
                    round_trip_cell(&z.sockets),
                    p50_diff(&z.library, &z.sockets),
                    p50_diff(&z.sockets, &z.host),
                    round_trip_cell(&z.pages_in_process),
                    round_trip_cell(&z.sockets_in_process)
                );
            }
        }
    }

    /// The targets, as [`Report::evaluate_targets`] found them.
    fn targets_section(&self, o: &mut String) {
        heading(o, "**Targets** (reported, not asserted)");
        table_header(
            o,
            &["target", "backend", "measured", "measured ÷ limit", ""],
        );
        for t in &self.targets {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                t.target,
                t.backend,
                t.measured,
                t.ratio
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into()),
                match t.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "n/a",
                }
            );
        }
    }
}

/// A section's title, on a line of its own between blank lines.
fn heading(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n{title}\n");
}

/// A table's header row and separator.
fn table_header(o: &mut String, columns: &[&str]) {
    let cells: String = columns
        .iter()
        .map(|c| {
            if c.is_empty() {
                " |".to_owned()
            } else {
                format!(" {c} |")
            }
        })
        .collect();
    let _ = writeln!(o, "|{cells}\n|{}", "---|".repeat(columns.len()));
}

/// The fan-out result of backend `b` for `n` receivers, if it has one.
fn fanout_of(b: &BackendReport, n: usize) -> Option<&Fanout> {
    b.fanout
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .find(|f| f.receivers == n)
}

/// The summaries of two round trips, if both have samples.
fn measured_pair(a: &Res<RoundTrip>, b: &Res<RoundTrip>) -> Option<(Summary, Summary)> {
    match (a, b) {
        (Ok(a), Ok(b)) if a.us.n > 0 && b.us.n > 0 => Some((a.us, b.us)),
        _ => None,
    }
}

/// A round-trip cell: p50 / p99, the number of samples and the losses.
fn round_trip_cell(r: &Res<RoundTrip>) -> String {
    cell(r, |t| {
        if t.us.n == 0 {
            format!("no samples{}", lost_suffix(t.lost))
        } else {
            format!(
                "{} / {} (n={}){}",
                dur(t.us.p50),
                dur(t.us.p99),
                t.us.n,
                lost_suffix(t.lost)
            )
        }
    })
}

/// A latency cell: `shown(l)` and the losses, or "no samples" and the
/// losses.
fn latency_cell(r: &Res<Latency>, shown: impl Fn(&Latency) -> String) -> String {
    cell(r, |l| {
        if l.us.n == 0 {
            format!("no samples{}", lost_suffix(l.lost))
        } else {
            format!("{}{}", shown(l), lost_suffix(l.lost))
        }
    })
}

/// Writes one row of the backends table: its label, and how a backend's
/// cell reads.
type Row<'a> = dyn FnMut(&str, &dyn Fn(&BackendReport) -> String) + 'a;

/// Reads one figure of a backend, if it has it.
type Getter = fn(&BackendReport) -> Option<f64>;
