//! The three kinds of chart `uvio plot` draws, as SVG text (plotters' SVG backend: no font
//! or image library; the viewer renders the text in its own sans-serif).
//!
//! - latency percentiles: x on a "nines" scale (90, 99, 99.9 equally spaced: the tail is
//!   what these charts are for), y latency on a log scale;
//! - latency histogram: x latency on a log scale, y the share of I/Os per bucket, fio's
//!   log-linear buckets gathered into ten per decade so that curves read as shapes;
//! - a value over time: x seconds, y from zero.
//!
//! Every chart has a title, axis descriptions with units and a legend naming each series.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use super::PlotError;

/// Every chart's size in pixels.
pub const SIZE: (u32, u32) = (1000, 600);

/// Series colours: Tableau 10, distinct on white and for most colour-blind readers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

const FONT: &str = "sans-serif";

/// One line of a chart: its legend text and its points in the chart's units.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The unit latencies are shown in, picked from the largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyUnit {
    Micros,
    Millis,
    Seconds,
}

impl LatencyUnit {
    /// The unit that shows `ns` as a number below 1000 (µs at least: fio's latencies are
    /// rarely below one). A linear axis takes the unit of its largest value, a log axis that
    /// of the middle of its decades.
    pub fn for_value(ns: f64) -> LatencyUnit {
        if ns < 1e6 {
            LatencyUnit::Micros
        } else if ns < 1e9 {
            LatencyUnit::Millis
        } else {
            LatencyUnit::Seconds
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            LatencyUnit::Micros => "µs",
            LatencyUnit::Millis => "ms",
            LatencyUnit::Seconds => "s",
        }
    }

    pub fn of_ns(self, ns: f64) -> f64 {
        match self {
            LatencyUnit::Micros => ns / 1e3,
            LatencyUnit::Millis => ns / 1e6,
            LatencyUnit::Seconds => ns / 1e9,
        }
    }
}

/// A tick label: no more digits than the value needs (`0.5`, `12`, `1.25`, `1.5k`, `20k`).
pub fn tick(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        return format!("{}M", tick(value / 1e6));
    }
    if magnitude >= 1e3 {
        return format!("{}k", tick(value / 1e3));
    }
    let digits = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else {
        // Two significant digits below 10 (0.25, 0.0012), enough for log-axis decades.
        (1.0 - magnitude.log10().floor()).clamp(2.0, 9.0) as usize
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The position on the "nines" axis of a percentile: 0 at 0%, 1 at 90%, 2 at 99%, 3 at 99.9%.
fn nines(percentile: f64) -> f64 {
    (100.0 / (100.0 - percentile)).log10()
}

/// The percentile at a position of the "nines" axis, as a tick label.
fn percentile_at(nines: f64) -> String {
    let p = 100.0 - 100.0 / 10f64.powf(nines);
    // Enough decimals to tell 99.9 from 99.99, no more.
    let decimals = (nines.ceil() as usize).saturating_sub(2).min(6);
    let text = format!("{p:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Whole decades around `[low, high]` (both > 0), for a log axis that labels its decades.
fn decades(low: f64, high: f64) -> std::ops::Range<f64> {
    let low = 10f64.powf(low.max(f64::MIN_POSITIVE).log10().floor());
    let mut high = 10f64.powf(high.max(f64::MIN_POSITIVE).log10().ceil());
    if high <= low {
        high = low * 10.0;
    }
    low..high
}

/// The top of a linear y axis over data up to `y_max`, leaving the legend of `series` lines
/// (upper right) a band of its own above the data.
fn with_legend_room(y_max: f64, series: usize) -> f64 {
    // The plotting area is about 470 px high; a legend row takes about 20 px.
    let legend_share = ((series as f64 * 20.0 + 25.0) / 470.0).min(0.6);
    y_max / (1.0 - legend_share)
}

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Axis descriptions and legend placement of one chart.
pub struct Layout<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub legend: SeriesLabelPosition,
    /// Mark each point (where they are few enough to tell apart): samples, not the corners
    /// of a step outline.
    pub marks: bool,
    /// How many x labels at most (plotters picks round values within).
    pub x_labels: usize,
}

/// Draws `series` as lines with point marks on axes `x` by `y`, labelled by the formatters.
fn draw<X, Y>(
    layout: &Layout<'_>,
    x: X,
    y: Y,
    x_label: &dyn Fn(&f64) -> String,
    y_label: &dyn Fn(&f64) -> String,
    series: &[Series],
) -> Result<String, PlotError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
    <X as AsRangedCoord>::CoordDescType: Ranged<ValueType = f64>,
    <Y as AsRangedCoord>::CoordDescType: Ranged<ValueType = f64>,
{
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(PlotError::NothingToPlot(layout.title.to_string()));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(layout.title, (FONT, 24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(85)
            .build_cartesian_2d(x, y)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(layout.x_desc)
            .y_desc(layout.y_desc)
            .x_labels(layout.x_labels)
            .x_label_formatter(x_label)
            .y_label_formatter(y_label)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .bold_line_style(RGBColor(0xcc, 0xcc, 0xcc))
            .draw()
            .map_err(draw_error)?;
        for (index, s) in series.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(draw_error)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            if layout.marks && s.points.len() <= 60 {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(draw_error)?;
            }
        }
        chart
            .configure_series_labels()
            .position(layout.legend.clone())
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0x99, 0x99, 0x99))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// Latency percentiles: each series is (percentile, nanoseconds).
pub fn percentiles(title: &str, series: &[(String, Vec<(f64, u64)>)]) -> Result<String, PlotError> {
    // 100% is at infinity on the nines axis: fio lists it only on request.
    let points: Vec<(&String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(label, p)| {
            let kept = p.iter().filter(|(pct, _)| *pct < 100.0);
            (label, kept.map(|&(pct, ns)| (pct, ns as f64)).collect())
        })
        .collect();
    let all = points.iter().flat_map(|(_, p)| p.iter());
    let max_ns = all.clone().map(|p| p.1).fold(0.0, f64::max);
    let min_ns = all.clone().map(|p| p.1).fold(f64::MAX, f64::min);
    let max_nines = all.map(|p| nines(p.0)).fold(2.0, f64::max).ceil();
    let unit = LatencyUnit::for_value((max_ns * min_ns.max(1.0)).sqrt());
    let lines: Vec<Series> = points
        .into_iter()
        .map(|(label, p)| Series {
            label: label.clone(),
            points: p
                .into_iter()
                .map(|(pct, ns)| (nines(pct), unit.of_ns(ns.max(1.0))))
                .collect(),
        })
        .collect();
    let y = decades(unit.of_ns(min_ns.max(1.0)), unit.of_ns(max_ns.max(1.0)));
    let y_desc = format!("latency ({}, log scale)", unit.symbol());
    let layout = Layout {
        title,
        x_desc: "percentile (%)",
        y_desc: &y_desc,
        legend: SeriesLabelPosition::UpperLeft,
        marks: true,
        // One label per nine: 0, 90, 99, 99.9 (between them, 68 or 99.7 only confuse).
        x_labels: max_nines as usize + 1,
    };
    draw(
        &layout,
        0.0..max_nines,
        y.log_scale(),
        &|x| percentile_at(*x),
        &|y| tick(*y),
        &lines,
    )
}

/// Buckets per decade of the histogram chart.
const BUCKETS_PER_DECADE: f64 = 10.0;

/// Latency histograms: each series is fio's bins, (nanoseconds, I/Os).
pub fn histogram(title: &str, series: &[(String, Vec<(u64, u64)>)]) -> Result<String, PlotError> {
    let bucket_ns = || {
        series
            .iter()
            .flat_map(|(_, b)| b.iter().map(|b| b.0.max(1)))
    };
    let (min_ns, max_ns) = (
        bucket_ns().min().unwrap_or(1) as f64,
        bucket_ns().max().unwrap_or(1) as f64,
    );
    let unit = LatencyUnit::for_value((min_ns * max_ns).sqrt());
    let mut lines = Vec::new();
    let (mut low, mut high) = (f64::MAX, 0f64);
    for (label, bins) in series {
        let total = bins.iter().fold(0u64, |sum, b| sum.saturating_add(b.1));
        if total == 0 {
            continue;
        }
        // Gather fio's buckets into ten per decade: bucket k holds [10^(k/10), 10^((k+1)/10)).
        let index = |ns: u64| ((ns.max(1) as f64).log10() * BUCKETS_PER_DECADE).floor() as i64;
        let first = bins.iter().map(|b| index(b.0)).min().unwrap_or(0);
        let last = bins.iter().map(|b| index(b.0)).max().unwrap_or(0);
        let mut shares = vec![0.0; (last - first + 1) as usize];
        for &(ns, count) in bins {
            shares[(index(ns) - first) as usize] += count as f64 * 100.0 / total as f64;
        }
        let edge = |k: i64| unit.of_ns(10f64.powf(k as f64 / BUCKETS_PER_DECADE));
        // A step outline: up and across each bucket, down to zero at both ends.
        let mut points = vec![(edge(first), 0.0)];
        for (offset, share) in shares.iter().enumerate() {
            let k = first + offset as i64;
            points.push((edge(k), *share));
            points.push((edge(k + 1), *share));
        }
        points.push((edge(last + 1), 0.0));
        low = low.min(edge(first));
        high = high.max(edge(last + 1));
        lines.push(Series {
            label: label.clone(),
            points,
        });
    }
    if lines.is_empty() {
        return Err(PlotError::NothingToPlot(format!(
            "{title} (no bins: was the report written with --output-format=json+?)"
        )));
    }
    let max_share = lines
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let x_desc = format!("latency ({}, log scale)", unit.symbol());
    let layout = Layout {
        title,
        x_desc: &x_desc,
        y_desc: "I/Os in the bucket (%)",
        legend: SeriesLabelPosition::UpperRight,
        marks: false,
        x_labels: 10,
    };
    draw(
        &layout,
        decades(low, high).log_scale(),
        0.0..with_legend_room(max_share, lines.len()).max(1.0),
        &|x| tick(*x),
        &|y| tick(*y),
        &lines,
    )
}

/// A value over time: each series is (seconds, value in the chart's unit).
pub fn over_time(title: &str, y_desc: &str, series: &[Series]) -> Result<String, PlotError> {
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max);
    let y_max = points.map(|p| p.1).fold(0.0, f64::max);
    let layout = Layout {
        title,
        x_desc: "time (s)",
        y_desc,
        legend: SeriesLabelPosition::UpperRight,
        marks: true,
        x_labels: 10,
    };
    draw(
        &layout,
        0.0..x_max.max(0.001),
        0.0..with_legend_room(y_max, series.len()).max(1e-9),
        &|x| tick(*x),
        &|y| tick(*y),
        series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_as_numbers() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(0.001), "0.001");
        assert_eq!(tick(0.0012), "0.0012");
        assert_eq!(tick(1.25), "1.25");
        assert_eq!(tick(12.0), "12");
        assert_eq!(tick(150.0), "150");
        assert_eq!(tick(5000.0), "5k");
        assert_eq!(tick(1500.0), "1.5k");
        assert_eq!(tick(20_000.0), "20k");
        assert_eq!(tick(2_500_000.0), "2.5M");
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-12);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_at(0.0), "0");
        assert_eq!(percentile_at(1.0), "90");
        assert_eq!(percentile_at(2.0), "99");
        assert_eq!(percentile_at(3.0), "99.9");
        assert_eq!(percentile_at(4.0), "99.99");
    }

    #[test]
    fn latency_units() {
        assert_eq!(LatencyUnit::for_value(152_576.0), LatencyUnit::Micros);
        assert_eq!(LatencyUnit::for_value(22_400_000.0), LatencyUnit::Millis);
        assert_eq!(LatencyUnit::for_value(2e9), LatencyUnit::Seconds);
        assert_eq!(LatencyUnit::Millis.of_ns(1_500_000.0), 1.5);
        assert_eq!(decades(0.099, 152.0), 0.01..1000.0);
        assert_eq!(decades(5.0, 5.0), 1.0..10.0);
    }
}
