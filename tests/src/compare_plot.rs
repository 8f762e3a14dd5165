//! `uvio-compare --plot DIR`: its table as two SVG charts, `comparison-iops.svg` and
//! `comparison-p99.svg`.
//!
//! Each chart has one panel per device kind (virtio-blk, virtio-scsi, their packed twins) and
//! in it one group of bars per workload, a bar per peer that ran it (uvio, the kernel,
//! libblkio, and whatever other column the table grows), each bar labelled with its value.
//! Peers are whatever names the table adds ([`Comparison::add`]), in the order they first
//! appear, each with one colour throughout; a peer that did not run a row leaves a gap. Bars
//! start at zero: the kernel's short bars next to uvio's are the finding, the labels give
//! their values.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One peer's figures in one row: the medians the table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerFigures {
    pub peer: String,
    pub iops: f64,
    /// The 99th percentile latency the table shows, µs: completion latency (clat) for uvio
    /// and fio, submission to completion for libblkio's load generator.
    pub p99_us: f64,
}

/// One row of the table: a workload on a device kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub device: String,
    pub workload: String,
    pub peers: Vec<PeerFigures>,
}

/// The table, as the charts read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Records `peer`'s figures for the row (`device`, `workload`), making the row if new.
    pub fn add(&mut self, device: &str, workload: &str, peer: &str, iops: f64, p99_us: f64) {
        let index = match self
            .rows
            .iter()
            .position(|r| r.device == device && r.workload == workload)
        {
            Some(i) => i,
            None => {
                self.rows.push(Row {
                    device: device.into(),
                    workload: workload.into(),
                    peers: Vec::new(),
                });
                self.rows.len() - 1
            }
        };
        self.rows[index].peers.push(PeerFigures {
            peer: peer.into(),
            iops,
            p99_us,
        });
    }

    /// Every peer, in the order it first appears.
    fn peers(&self) -> Vec<&str> {
        let mut peers: Vec<&str> = Vec::new();
        for p in self.rows.iter().flat_map(|r| r.peers.iter()) {
            if !peers.contains(&p.peer.as_str()) {
                peers.push(&p.peer);
            }
        }
        peers
    }

    /// Every device kind, in the order it first appears.
    fn devices(&self) -> Vec<&str> {
        let mut devices: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !devices.contains(&r.device.as_str()) {
                devices.push(&r.device);
            }
        }
        devices
    }
}

/// What a chart shows of each peer's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Iops,
    P99,
}

impl Metric {
    fn file_name(self) -> &'static str {
        match self {
            Metric::Iops => "comparison-iops.svg",
            Metric::P99 => "comparison-p99.svg",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Metric::Iops => "IOPS by workload (median run; higher is better)",
            Metric::P99 => "p99 latency by workload (median run; lower is better)",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            Metric::Iops => "IOPS",
            Metric::P99 => "p99 latency (µs)",
        }
    }

    fn of(self, f: &PeerFigures) -> f64 {
        match self {
            Metric::Iops => f.iops,
            Metric::P99 => f.p99_us,
        }
    }
}

/// Writes both charts into `dir` (made if missing) and returns their paths.
pub fn write_charts(dir: &Path, table: &Comparison) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("making {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for metric in [Metric::Iops, Metric::P99] {
        let path = dir.join(metric.file_name());
        let svg = chart(table, metric)?;
        std::fs::write(&path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Series colours: Tableau 10, as `uvio plot` uses them.
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
const WIDTH: u32 = 1100;
const PANEL_HEIGHT: u32 = 430;
const TITLE_HEIGHT: u32 = 50;

/// A figure as a bar label: `12.3k`, `850`, `35`, `7.5`.
fn short(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// An axis tick: `0`, `50k`, `1.5k`, `200`, `2.5`.
fn tick(value: f64) -> String {
    let text = if value >= 1e3 {
        format!("{}k", tick(value / 1e3))
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        let unit = if text.ends_with('k') { "k" } else { "" };
        let number = text.trim_end_matches('k');
        format!(
            "{}{unit}",
            number.trim_end_matches('0').trim_end_matches('.')
        )
    } else {
        text
    }
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word keeps
/// its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn draw_error(e: impl std::fmt::Display) -> String {
    format!("drawing the comparison chart: {e}")
}

/// One metric's chart as SVG text.
pub fn chart(table: &Comparison, metric: Metric) -> Result<String, String> {
    let devices = table.devices();
    let peers = table.peers();
    if devices.is_empty() {
        return Err("the comparison has no rows to draw".into());
    }
    let height = TITLE_HEIGHT + PANEL_HEIGHT * devices.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (title, body) = root.split_vertically(TITLE_HEIGHT);
        title
            .titled(metric.title(), (FONT, 24))
            .map_err(draw_error)?;
        let panels = body.split_evenly((devices.len(), 1));
        for (device, panel) in devices.iter().zip(&panels) {
            let rows: Vec<&Row> = table.rows.iter().filter(|r| r.device == *device).collect();
            draw_panel(&root, panel, device, &rows, &peers, metric)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// One device kind's panel: a group of bars per row.
fn draw_panel(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    device: &str,
    rows: &[&Row],
    peers: &[&str],
    metric: Metric,
) -> Result<(), String> {
    let y_max = rows
        .iter()
        .flat_map(|r| r.peers.iter().map(|p| metric.of(p)))
        .fold(0.0, f64::max);
    // Room above the bars for their labels and the legend.
    let legend_share =
        ((peers.len() as f64 * 20.0 + 25.0) / (PANEL_HEIGHT as f64 - 110.0)).min(0.6);
    let y_top = (y_max * 1.08 / (1.0 - legend_share)).max(1.0);
    let mut chart = ChartBuilder::on(panel)
        .caption(device, (FONT, 19))
        .margin(15)
        .x_label_area_size(62)
        .y_label_area_size(85)
        .build_cartesian_2d(0.0..rows.len() as f64, 0.0..y_top)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(metric.axis())
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .bold_line_style(RGBColor(0xd0, 0xd0, 0xd0))
        .draw()
        .map_err(draw_error)?;
    // Each group spans 80% of its slot, split evenly among every peer of the chart so that a
    // peer keeps its place in every group.
    let slot = 0.8 / peers.len().max(1) as f64;
    for (peer_index, peer) in peers.iter().enumerate() {
        let colour = PALETTE[peer_index % PALETTE.len()];
        let bars: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(row_index, r)| {
                r.peers.iter().find(|p| p.peer == *peer).map(|p| {
                    (
                        row_index as f64 + 0.1 + slot * peer_index as f64,
                        metric.of(p),
                    )
                })
            })
            .collect();
        // A peer absent from this device kind is left out of its legend too (its colour
        // stays its own in every panel).
        if bars.is_empty() {
            continue;
        }
        chart
            .draw_series(bars.iter().map(|&(x, v)| {
                Rectangle::new(
                    [(x + slot * 0.06, 0.0), (x + slot * 0.94, v)],
                    colour.filled(),
                )
            }))
            .map_err(draw_error)?
            .label(*peer)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], colour.filled()));
        for &(x, v) in &bars {
            let (px, py) = chart.backend_coord(&(x + slot / 2.0, v));
            root.draw(&Text::new(
                short(v),
                (px, py - 3),
                (FONT, 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(draw_error)?;
        }
    }
    // The workload names under their groups, wrapped to the group's width (about 7 px a
    // character at 14 px).
    let group_px = {
        let (left, _) = chart.backend_coord(&(0.0, 0.0));
        let (right, _) = chart.backend_coord(&(1.0, 0.0));
        (right - left).max(0) as usize
    };
    for (row_index, r) in rows.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(row_index as f64 + 0.5, 0.0));
        for (line_index, line) in wrap(&r.workload, (group_px / 7).max(8)).iter().enumerate() {
            root.draw(&Text::new(
                line.clone(),
                (px, py + 8 + 16 * line_index as i32),
                (FONT, 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(draw_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0x99, 0x99, 0x99))
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as uvio-compare fills it: libblkio only on virtio-blk, and a fourth column
    /// (`fio+uvio`) on one row only.
    fn table() -> Comparison {
        let mut t = Comparison::default();
        t.add("virtio-blk", "4k randread qd1", "uvio", 41_200.0, 35.0);
        t.add("virtio-blk", "4k randread qd1", "kernel", 5_100.0, 260.0);
        t.add("virtio-blk", "4k randread qd1", "libblkio", 35_300.0, 41.0);
        t.add("virtio-blk", "4k randread qd32", "uvio", 120_500.0, 400.0);
        t.add("virtio-blk", "4k randread qd32", "kernel", 6_000.0, 7_300.0);
        t.add(
            "virtio-blk",
            "4k randread qd32",
            "libblkio",
            100_400.0,
            480.0,
        );
        t.add(
            "virtio-blk",
            "4k randread qd32",
            "fio+uvio",
            90_000.0,
            520.0,
        );
        t.add("virtio-scsi", "4k randread qd1", "uvio", 30_000.0, 45.0);
        t.add("virtio-scsi", "4k randread qd1", "kernel", 3_900.0, 330.0);
        t
    }

    /// The `<text>` elements and the filled `<rect>`s (bars and legend marks) of an SVG.
    fn read_svg(svg: &str) -> (Vec<String>, usize) {
        let doc = roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
        let texts = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
            .collect();
        let filled_rects = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter(|n| {
                let fill = n.attribute("fill").unwrap_or("none");
                fill != "none" && fill != "#FFFFFF"
            })
            .count();
        (texts, filled_rects)
    }

    #[test]
    fn ticks_and_wrapped_labels() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(50_000.0), "50k");
        assert_eq!(tick(1_500.0), "1.5k");
        assert_eq!(tick(200.0), "200");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(
            wrap("4k randread 2 jobs x qd32 on vCPU 0", 17),
            ["4k randread 2", "jobs x qd32 on", "vCPU 0"]
        );
        assert_eq!(wrap("4k randread qd1", 17), ["4k randread qd1"]);
    }

    #[test]
    fn rows_and_peers_in_first_seen_order() {
        let t = table();
        assert_eq!(t.devices(), ["virtio-blk", "virtio-scsi"]);
        assert_eq!(t.peers(), ["uvio", "kernel", "libblkio", "fio+uvio"]);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[1].peers.len(), 4);
    }

    #[test]
    fn iops_chart_names_every_panel_workload_peer_and_value() {
        let t = table();
        let (texts, rects) = read_svg(&chart(&t, Metric::Iops).unwrap());
        for want in [
            "IOPS by workload (median run; higher is better)",
            "virtio-blk",
            "virtio-scsi",
            "IOPS",
            "4k randread qd1",
            "4k randread qd32",
            "uvio",
            "kernel",
            "libblkio",
            "fio+uvio",
            "41.2k",
            "5100",
            "120.5k",
            "90.0k",
        ] {
            assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:?}");
        }
        // A bar per figure (9), a legend mark per peer that ran on the panel's device kind
        // (4 on virtio-blk, 2 on virtio-scsi).
        assert_eq!(rects, 9 + 4 + 2, "{texts:?}");
    }

    #[test]
    fn p99_chart_and_files() {
        let t = table();
        let (texts, _) = read_svg(&chart(&t, Metric::P99).unwrap());
        for want in ["p99 latency (µs)", "7300", "35", "520"] {
            assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:?}");
        }
        let dir = std::env::temp_dir().join(format!("uvio-compare-plot-{}", std::process::id()));
        let written = write_charts(&dir, &t).unwrap();
        assert_eq!(
            written,
            [
                dir.join("comparison-iops.svg"),
                dir.join("comparison-p99.svg")
            ]
        );
        for path in &written {
            let svg = std::fs::read_to_string(path).unwrap();
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            chart(&Comparison::default(), Metric::Iops).unwrap_err(),
            "the comparison has no rows to draw"
        );
    }
}
