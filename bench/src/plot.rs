//! SVG plots for RESULTS.md: throughput against concurrency, and latency CDFs, one line per
//! system.

use std::path::Path;

use plotters::prelude::*;

/// One line of a plot.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 4] = [RGBColor(200, 60, 40), RGBColor(30, 90, 200), RGBColor(40, 150, 60), RGBColor(140, 60, 160)];

/// A line chart with a logarithmic x axis.
fn draw(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let x_min = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1e-3);
    let x_max = all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max).max(x_min * 1.01);
    let y_max = all.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| err(&e))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Throughput (y) against concurrent clients (x, log scale).
pub fn throughput(path: &Path, workload: &str, series: &[Series]) -> anyhow::Result<()> {
    draw(path, &format!("{workload}: throughput vs clients"), "clients (log scale)", "ops/s", series)
}

/// Latency (x, ms, log scale) against the fraction of requests at most that slow (y).
pub fn latency_cdf(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    draw(path, title, "latency ms (log scale)", "fraction of requests", series)
}
