//! The results: what was measured, the table, the targets and the chart.

use std::fmt::Write as _;

use serde::Serialize;

use crate::lib_xmpp::EventCounts;
use crate::memory::Memory;
use crate::stats::Summary;
use crate::sys::Machine;
use crate::wire_cost::OpCost;
use crate::workloads::{Fanout, JoinFirst, Latency, Throughput};

/// A workload's result, or why it has none.
pub type Res<T> = Result<T, String>;

/// Workloads 1-5 on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    pub name: String,
    pub latency_32: Res<Latency>,
    pub latency_128k: Res<Latency>,
    pub throughput: Res<Throughput>,
    pub fanout: Vec<Res<Fanout>>,
    pub join: Res<JoinFirst>,
    /// Wall time of all its workloads, set-up included (s).
    pub wall_s: f64,
}

/// Workload 8 for one server configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleReport {
    pub label: String,
    pub c2s_rate_limit: Option<String>,
    /// The setting changed against the recommended configuration.
    pub config_edit: Option<String>,
    pub latency_32: Res<Latency>,
    pub latency_128k: Res<Latency>,
    pub throughput: Res<Throughput>,
    /// What the clients reported through `Client::events()`.
    pub events: EventCounts,
    pub rss_start_kib: u64,
    pub rss_max_kib: u64,
    pub rss_end_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub backend: String,
    pub measured: String,
    /// measured / limit, oriented so that <= 1 meets the target.
    pub ratio: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub command: String,
    pub machine: Machine,
    pub unix_time: u64,
    pub wall_s: f64,
    pub backends: Vec<BackendReport>,
    pub wire: Vec<OpCost>,
    pub callgrind_note: String,
    pub memory: Res<Memory>,
    pub throttle: Vec<ThrottleReport>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

/// A duration given in µs, in the unit that reads best.
pub fn dur(us: f64) -> String {
    if us >= 10_000_000.0 {
        format!("{:.1} s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn summary4(s: &Summary) -> String {
    if s.n == 0 {
        return "no samples".into();
    }
    format!(
        "{} / {} / {} / {}",
        dur(s.p50),
        dur(s.p90),
        dur(s.p99),
        dur(s.max)
    )
}

fn err_cell(e: &str) -> String {
    // Keep the table one line per row; the JSON has the whole message.
    let short: String = e.chars().take(60).collect();
    format!("error: {}", short.replace('|', "/"))
}

fn cell<T>(r: &Res<T>, f: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => f(v),
        Err(e) => err_cell(e),
    }
}

fn lost_suffix(lost: usize) -> String {
    if lost == 0 {
        String::new()
    } else {
        format!(" ({lost} lost)")
    }
}

fn bytes(b: f64) -> String {
    if b >= 10.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

impl Report {
    fn backend(&self, name: &str) -> Option<&BackendReport> {
        self.backends.iter().find(|b| b.name == name)
    }

    fn p50_32(&self, name: &str) -> Option<f64> {
        self.backend(name)?
            .latency_32
            .as_ref()
            .ok()
            .filter(|l| l.us.n > 0)
            .map(|l| l.us.p50)
    }

    /// The markdown tables.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
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
        let fan_ns: Vec<usize> = self
            .backends
            .iter()
            .flat_map(|b| {
                b.fanout
                    .iter()
                    .filter_map(|f| f.as_ref().ok().map(|f| f.receivers))
            })
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        for (i, n) in fan_ns.iter().enumerate() {
            let _ = i;
            row(
                &format!("4. fan-out to {n}: all have it, p50 / p99"),
                &|b| match b
                    .fanout
                    .iter()
                    .find(|f| matches!(f, Ok(f) if f.receivers == *n))
                {
                    Some(Ok(f)) if f.all_us.n > 0 => format!(
                        "{} / {}{}",
                        dur(f.all_us.p50),
                        dur(f.all_us.p99),
                        lost_suffix(f.lost)
                    ),
                    Some(Ok(_)) => "no samples".into(),
                    _ => b
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
                &|b| match b
                    .fanout
                    .iter()
                    .find(|f| matches!(f, Ok(f) if f.receivers == *n))
                {
                    Some(Ok(f)) => format!(
                        "{} / {}",
                        f.sender_bytes
                            .map(|v| bytes(v as f64))
                            .unwrap_or_else(|| "n/a".into()),
                        f.loopback_bytes.map(bytes).unwrap_or_else(|| "n/a".into())
                    ),
                    _ => "-".into(),
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
        let relay = self.p50_32("tcp-relay");
        let iroh = self.p50_32("iroh-deltachat");
        row(
            "32 B p50 ÷ tcp-relay floor",
            &|b| match (self.p50_32(&b.name), relay) {
                (Some(x), Some(r)) if r > 0.0 => format!("{:.1}×", x / r),
                _ => "-".into(),
            },
        );
        row(
            "32 B p50 ÷ iroh-deltachat",
            &|b| match (self.p50_32(&b.name), iroh) {
                (Some(x), Some(r)) if r > 0.0 => format!("{:.2}×", x / r),
                _ => "-".into(),
            },
        );
        row("wall time (set-up included)", &|b| {
            format!("{:.1} s", b.wall_s)
        });

        let _ = writeln!(o, "\n**6. Memory (XMPP via Prosody, VmRSS deltas)**\n");
        match &self.memory {
            Ok(m) => {
                let _ = writeln!(o, "| what | added per unit |\n|---|---|");
                let _ = writeln!(
                    o,
                    "| per connection (client side, {} connections) | {} |",
                    m.connections,
                    bytes(m.per_connection_kib * 1024.0)
                );
                if let Some(s) = m.server_per_connection_kib {
                    let _ = writeln!(
                        o,
                        "| per connection (Prosody's VmRSS) | {} |",
                        bytes(s * 1024.0)
                    );
                }
                let _ = writeln!(
                    o,
                    "| per entered room ({} rooms, one connection) | {} |",
                    m.rooms,
                    bytes(m.per_room_kib * 1024.0)
                );
                let _ = writeln!(
                    o,
                    "| per joined channel ({} channels, one connection) | {} |",
                    m.channels,
                    bytes(m.per_channel_kib * 1024.0)
                );
            }
            Err(e) => {
                let _ = writeln!(o, "{}", err_cell(e));
            }
        }

        let _ = writeln!(o, "\n**7. Library cost alone (no network)**\n");
        let _ = writeln!(
            o,
            "| path | payload | p50 per op | min | instructions per op (callgrind) |\n|---|---|---|---|---|"
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

        let _ = writeln!(o, "\n**8. Throttled server (Prosody, same library)**\n");
        let _ = writeln!(
            o,
            "| server | 32 B latency p50 / p99 | 128000 B latency p50 / max | 1 KiB: delivered/s, sent/s (lost of sent) | send().await p50 / max | client events | RSS start → max → end |\n|---|---|---|---|---|---|---|"
        );
        for t in &self.throttle {
            let lat32 = cell(&t.latency_32, |l| {
                if l.us.n == 0 {
                    return format!("no samples{}", lost_suffix(l.lost));
                }
                format!(
                    "{} / {}{}",
                    dur(l.us.p50),
                    dur(l.us.p99),
                    lost_suffix(l.lost)
                )
            });
            let lat = cell(&t.latency_128k, |l| {
                if l.us.n == 0 {
                    return format!("no samples{}", lost_suffix(l.lost));
                }
                format!(
                    "{} / {} (n={}){}",
                    dur(l.us.p50),
                    dur(l.us.max),
                    l.us.n,
                    lost_suffix(l.lost)
                )
            });
            let tp = cell(&t.throughput, |x| {
                format!(
                    "{:.0}/s, {:.0}/s ({} of {}{})",
                    x.delivered_per_s,
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
                "| {} | {} | {} | {} | {} | disconnected {}, reconnect failed {}, closed {} | {} → {} → {} MiB |",
                t.label,
                lat32,
                lat,
                tp,
                waits,
                e.disconnected,
                e.reconnect_failed,
                e.closed,
                t.rss_start_kib / 1024,
                t.rss_max_kib / 1024,
                t.rss_end_kib / 1024
            );
        }

        let _ = writeln!(o, "\n**Targets** (reported, not asserted)\n");
        let _ = writeln!(
            o,
            "| target | backend | measured | measured ÷ limit | |\n|---|---|---|---|---|"
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
        o
    }

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
        for b in self.backends.iter().filter(|b| b.name.starts_with("xmpp")) {
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

    /// The chart: 32 B latency per backend (p50 and p99) and fan-out time
    /// by number of receivers, both on log scales.
    pub fn svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (1000, 420)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (left, right) = root.split_horizontally(500);
            let colors = [
                RGBColor(31, 119, 180),
                RGBColor(255, 127, 14),
                RGBColor(44, 160, 44),
                RGBColor(148, 103, 189),
                RGBColor(140, 86, 75),
                RGBColor(214, 39, 40),
            ];

            // Left: 32 B one-way latency.
            let lat: Vec<(String, f64, f64)> = self
                .backends
                .iter()
                .filter_map(|b| {
                    let l = b.latency_32.as_ref().ok().filter(|l| l.us.n > 0)?;
                    Some((b.name.clone(), l.us.p50.max(1.0), l.us.p99.max(1.0)))
                })
                .collect();
            let ymax = lat.iter().map(|l| l.2).fold(10.0, f64::max) * 2.0;
            let n = lat.len().max(1);
            let mut chart = ChartBuilder::on(&left)
                .caption("one-way latency, 32 B (µs, log)", ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(60)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..n as f64, (1f64..ymax).log_scale())
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = lat.iter().map(|l| l.0.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    names.get(i).cloned().unwrap_or_default()
                })
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (_, p50, p99)) in lat.iter().enumerate() {
                let x = i as f64;
                let c = colors[i % colors.len()];
                chart
                    .draw_series([Rectangle::new(
                        [(x + 0.15, 1.0), (x + 0.5, *p50)],
                        c.filled(),
                    )])
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([Rectangle::new(
                        [(x + 0.5, 1.0), (x + 0.85, *p99)],
                        c.mix(0.4).filled(),
                    )])
                    .map_err(|e| e.to_string())?;
            }

            // Right: fan-out, time until all receivers have it (p50).
            let series: Vec<(String, Vec<(f64, f64)>)> = self
                .backends
                .iter()
                .map(|b| {
                    let pts = b
                        .fanout
                        .iter()
                        .filter_map(|f| f.as_ref().ok())
                        .filter(|f| f.all_us.n > 0)
                        .map(|f| (f.receivers as f64, f.all_us.p50.max(1.0)))
                        .collect();
                    (b.name.clone(), pts)
                })
                .collect();
            let ymax = series
                .iter()
                .flat_map(|s| s.1.iter().map(|p| p.1))
                .fold(10.0, f64::max)
                * 2.0;
            let mut chart = ChartBuilder::on(&right)
                .caption("fan-out p50, all receivers (µs, log)", ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d((1.5f64..40.0).log_scale(), (1f64..ymax).log_scale())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("receivers")
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let c = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }
}
