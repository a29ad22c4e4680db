//! The chart: 32 B latency per backend and fan-out by receivers.

use super::Report;

impl Report {
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
                .caption(
                    "one-way latency, 32 B: p50 solid, p99 light (µs, log)",
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(60)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..n as f64, (1f64..ymax).log_scale())
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = lat.iter().map(|l| l.0.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                // Ask for labels every quarter step and name only the ones at
                // a bar pair's middle: with `n` labels plotters picks round
                // positions and names only some of the backends.
                .x_labels(n * 4 + 1)
                .x_label_formatter(&|x| {
                    let middle = (x - x.floor() - 0.5).abs() < 1e-6;
                    match middle {
                        true => names.get(x.floor() as usize).cloned().unwrap_or_default(),
                        false => String::new(),
                    }
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
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }
}
