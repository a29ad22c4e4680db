//! The chart: 32 B latency per backend and fan-out by receivers.
//!
//! The latency panel is a horizontal bar chart with one band per backend
//! and the backend's name written in its band, so that every backend is
//! named whatever their number (plotters picks axis label positions by
//! itself and named only some of the bars when the names were axis
//! labels). The image grows with the number of backends.

use super::format::dur;
use super::Report;

/// Colours, one per backend in report order (the two panels agree); more
/// backends than colours repeat them.
const COLORS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Pixels per backend band in the latency panel.
const BAND_PX: u32 = 48;

impl Report {
    /// The chart: 32 B latency per backend (p50 and p99) and fan-out time
    /// by number of receivers, both on log scales.
    pub fn svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let color = |i: usize| {
            let (r, g, b) = COLORS[i % COLORS.len()];
            RGBColor(r, g, b)
        };
        // Every backend keeps its colour (its index in the report), also
        // when it has no latency or no fan-out figures.
        let lat: Vec<(usize, String, f64, f64)> = self
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let l = b.latency_32.as_ref().ok().filter(|l| l.us.n > 0)?;
                Some((i, b.name.clone(), l.us.p50.max(1.0), l.us.p99.max(1.0)))
            })
            .collect();
        let n = lat.len().max(1);
        let height = (90 + BAND_PX * n as u32).max(420);
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (1100, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (left, right) = root.split_horizontally(580);

            // Left: 32 B one-way latency, one band per backend (top to
            // bottom in report order), p50 and p99 bars from 1 µs.
            let xmax = lat.iter().map(|l| l.3).fold(10.0, f64::max) * 6.0;
            let mut chart = ChartBuilder::on(&left)
                .caption(
                    "one-way latency, 32 B: p50 solid, p99 light (µs, log)",
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(10)
                .build_cartesian_2d((1f64..xmax).log_scale(), 0f64..n as f64)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .disable_y_axis()
                .y_labels(0)
                .draw()
                .map_err(|e| e.to_string())?;
            let name_style = ("sans-serif", 14).into_font().color(&BLACK);
            let value_style = ("sans-serif", 12).into_font().color(&BLACK);
            for (row, (i, name, p50, p99)) in lat.iter().enumerate() {
                // Band `row` from the top spans y in [top - 1, top].
                let top = (n - row) as f64;
                let c = color(*i);
                chart
                    .draw_series([
                        Rectangle::new([(1.0, top - 0.42), (*p50, top - 0.66)], c.filled()),
                        Rectangle::new(
                            [(1.0, top - 0.68), (*p99, top - 0.92)],
                            c.mix(0.4).filled(),
                        ),
                    ])
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([
                        Text::new(name.clone(), (1.05, top - 0.05), name_style.clone()),
                        Text::new(
                            format!("p50 {}", dur(*p50)),
                            (*p50 * 1.1, top - 0.43),
                            value_style.clone(),
                        ),
                        Text::new(
                            format!("p99 {}", dur(*p99)),
                            (*p99 * 1.1, top - 0.69),
                            value_style.clone(),
                        ),
                    ])
                    .map_err(|e| e.to_string())?;
            }

            // Right: fan-out, time until all receivers have it (p50).
            let series: Vec<Series> = self
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let pts: Vec<(f64, f64)> = b
                        .fanout
                        .iter()
                        .filter_map(|f| f.as_ref().ok())
                        .filter(|f| f.all_us.n > 0)
                        .map(|f| (f.receivers as f64, f.all_us.p50.max(1.0)))
                        .collect();
                    (i, b.name.clone(), pts)
                })
                .filter(|s| !s.2.is_empty())
                .collect();
            let ymax = series
                .iter()
                .flat_map(|s| s.2.iter().map(|p| p.1))
                .fold(10.0, f64::max)
                // Room above the lines for the legend.
                * 40.0;
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
            for (i, name, pts) in &series {
                let c = color(*i);
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
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }
}

/// One backend's line of the fan-out panel: its index (for the colour), its
/// name, and (receivers, p50 µs) points.
type Series = (usize, String, Vec<(f64, f64)>);
