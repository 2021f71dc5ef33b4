//! The plots of `cargo xtask bench`, SVG, written beside the report
//! (`target/bench/plots/`): boot to verdict over the boots, requests/s per
//! queue (the device's colour, the depth it reached in the label), the
//! blk workloads by queue depth, and the hypercalls' latency ranges.

use crate::report::{BlkBench, DefaultBench, LatencyFigures, QueueFigures, Report};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const WIDTH: u32 = 1100;
const FONT: &str = "sans-serif";

/// Writes every plot the report has figures for; returns their paths.
pub fn write_all(r: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mut out = |name: &str, f: &dyn Fn(&Path) -> Result<(), String>| {
        let path = dir.join(name);
        f(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
        Ok::<(), String>(())
    };
    if let Some(d) = &r.default {
        if d.boot.to_verdict_ms.is_some() {
            out("boot-to-verdict.svg", &|p| boot_times(d, p))?;
        }
        if !d.queues.is_empty() {
            out("queue-rates.svg", &|p| {
                queue_rates(
                    &format!(
                        "Requests/s per queue, default scenario (median of {} boots, min–max bars)",
                        d.measured.runs
                    ),
                    &d.queues,
                    p,
                )
            })?;
        }
        if !d.latencies.is_empty() {
            out("hypercall-latency.svg", &|p| latencies(d, p))?;
        }
    }
    if let Some(b) = &r.blk {
        if !b.workloads.is_empty() {
            out("blk-queue-depth.svg", &|p| blk_depths(b, p))?;
        }
    }
    if let Some(s) = &r.streams {
        if !s.queues.is_empty() {
            out("streams-queue-rates.svg", &|p| {
                queue_rates(
                    &format!(
                        "Requests/s per queue, bench streams at stress={} (median of {} boots)",
                        s.stress, s.measured.runs
                    ),
                    &s.queues,
                    p,
                )
            })?;
        }
    }
    Ok(written)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A chart of one row per label (the first at the top) over a log-scale
/// value axis: the queue rates and the hypercall latencies.
struct RowChart<'a> {
    caption: &'a str,
    /// The value axis, low to high (> 0).
    range: (f64, f64),
    labels: &'a [String],
    /// Room per character of the longest label, in pixels.
    char_px: u32,
    label_size: u32,
    x_desc: &'a str,
    y_desc: &'a str,
    x_label: &'a dyn Fn(&f64) -> String,
}

type Rows = Cartesian2d<
    LogCoord<f64>,
    plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordi32>,
>;

/// The row axis' value of row `i` of `n` (row 0 at the top).
fn row_of(n: usize, i: usize) -> i32 {
    (n - 1 - i) as i32
}

/// Builds a [`RowChart`] and draws its axes, labels and mesh.
fn row_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    c: RowChart<'_>,
) -> Result<ChartContext<'a, SVGBackend<'b>, Rows>, String> {
    let n = c.labels.len().max(1);
    let longest = c.labels.iter().map(|l| l.len()).max().unwrap_or(10) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(c.caption, (FONT, 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(longest * c.char_px + 20)
        .build_cartesian_2d(
            (c.range.0..c.range.1).log_scale(),
            (0..(n as i32 - 1).max(1)).into_segmented(),
        )
        .map_err(err)?;
    let name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(k) if (*k as usize) < c.labels.len() => {
            c.labels[c.labels.len() - 1 - *k as usize].clone()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&name)
        .x_desc(c.x_desc)
        .y_desc(c.y_desc)
        .x_label_formatter(c.x_label)
        .label_style((FONT, c.label_size))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Boot to verdict per boot (points), its median (line) and the 10 s the
/// default scenario must stay under; QEMU's exit per boot beside it.
fn boot_times(d: &DefaultBench, path: &Path) -> Result<(), String> {
    let Some(v) = &d.boot.to_verdict_ms else {
        return Ok(());
    };
    let secs: Vec<f64> = v.runs.iter().map(|ms| ms / 1000.0).collect();
    let exits: Vec<f64> = d
        .boot
        .to_qemu_exit_ms
        .as_ref()
        .map(|e| e.runs.iter().map(|ms| ms / 1000.0).collect())
        .unwrap_or_default();
    let n = secs.len();
    let top = secs.iter().cloned().fold(10.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (WIDTH, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Boot to verdict, default scenario ({n} boots, {}, {})",
                d.measured.accel, d.measured.date
            ),
            (FONT, 22),
        )
        .margin(16)
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("boot (run number)")
        .y_desc("seconds from start to verdict")
        .x_labels(n.min(20))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 && *x >= 1.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(err)?;
    let median = v.median / 1000.0;
    chart
        .draw_series(LineSeries::new(
            [(0.5, 10.0), (n as f64 + 0.5, 10.0)],
            RED.stroke_width(1),
        ))
        .map_err(err)?
        .label("10 s: the default scenario's limit")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(
            [(0.5, median), (n as f64 + 0.5, median)],
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!("median to verdict {median:.2} s"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            secs.iter()
                .enumerate()
                .map(|(i, s)| Circle::new((i as f64 + 1.0, *s), 5, BLUE.filled())),
        )
        .map_err(err)?
        .label("to verdict, each boot")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, BLUE.filled()));
    if !exits.is_empty() {
        chart
            .draw_series(
                exits
                    .iter()
                    .enumerate()
                    .map(|(i, s)| TriangleMarker::new((i as f64 + 1.0, *s), 5, BLACK)),
            )
            .map_err(err)?
            .label("QEMU exited, each boot")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, BLACK));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// A log axis is labelled at 1, 2 and 5 of each decade only (the others
/// crowd its right end).
fn log_label(x: &f64) -> String {
    if *x <= 0.0 {
        return String::new();
    }
    let mantissa = x / 10f64.powf(x.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// The device of a queue label: `blk fe.0.0001 q0 ...` -> `blk fe.0.0001`.
fn device(label: &str) -> String {
    let words: Vec<&str> = label.split_whitespace().collect();
    let bus = words
        .iter()
        .position(|w| w.split('.').count() == 3)
        .unwrap_or(0);
    words[..=bus.min(words.len().saturating_sub(1))].join(" ")
}

/// A horizontal bar per queue: median requests/s (log scale) with a
/// min–max line, coloured by device, the label with the depth reached.
fn queue_rates(
    heading: &str,
    queues: &BTreeMap<String, QueueFigures>,
    path: &Path,
) -> Result<(), String> {
    let rows: Vec<(&String, &QueueFigures)> = queues
        .iter()
        .filter(|(_, f)| f.requests_per_s.median > 0.0)
        .collect();
    let n = rows.len().max(1);
    let devices: Vec<String> = {
        let mut d: Vec<String> = rows.iter().map(|(l, _)| device(l)).collect();
        d.dedup();
        d
    };
    let colour = |label: &str| {
        let k = devices
            .iter()
            .position(|d| *d == device(label))
            .unwrap_or(0);
        Palette99::pick(k).to_rgba()
    };
    let labels: Vec<String> = rows
        .iter()
        .map(|(l, f)| match f.max_depth {
            Some(d) => format!("{l} (depth {d:.0})"),
            None => l.to_string(),
        })
        .collect();
    let longest = labels.iter().map(|l| l.len()).max().unwrap_or(10) as u32;
    let lo = rows
        .iter()
        .map(|(_, f)| f.requests_per_s.min)
        .fold(f64::MAX, f64::min)
        .max(1.0)
        / 2.0;
    let hi = rows
        .iter()
        .map(|(_, f)| f.requests_per_s.max)
        .fold(10.0, f64::max)
        * 2.0;
    let height = (140 + 18 * n as u32).max(420);
    let root = SVGBackend::new(path, (WIDTH.max(longest * 7 + 600), height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = row_chart(
        &root,
        RowChart {
            caption: heading,
            range: (lo, hi),
            labels: &labels,
            char_px: 7,
            label_size: 12,
            x_desc: "requests per second (log scale)",
            y_desc: "queue and phase (depth: most requests in flight)",
            x_label: &|x| format!("{x:.0}"),
        },
    )?;
    let row = |i: usize| row_of(n, i);
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (l, f))| {
            let mut bar = Rectangle::new(
                [
                    (lo, SegmentValue::Exact(row(i))),
                    (f.requests_per_s.median, SegmentValue::Exact(row(i) + 1)),
                ],
                colour(l).filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, f))| {
            ErrorBar::new_horizontal(
                SegmentValue::CenterOf(row(i)),
                f.requests_per_s.min,
                f.requests_per_s.median,
                f.requests_per_s.max,
                BLACK.stroke_width(1),
                8,
            )
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Per hypercall (a row each): the lowest to highest single call over all
/// boots (thin line), each boot's 10th–90th percentile where printed
/// (thick line), each boot's median (dot) and the median of the medians
/// (diamond). Nanoseconds, log scale.
fn latencies(d: &DefaultBench, path: &Path) -> Result<(), String> {
    let rows: Vec<(&String, &LatencyFigures)> = d.latencies.iter().collect();
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|(c, _)| c.to_string()).collect();
    let lo = rows
        .iter()
        .map(|(_, l)| l.min_ns)
        .fold(f64::MAX, f64::min)
        .max(1.0)
        / 1.5;
    let hi = rows.iter().map(|(_, l)| l.max_ns).fold(10.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (WIDTH, (170 + 44 * n as u32).max(360))).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let caption = format!(
        "Hypercall latency ({} boots × the firmware's calls per boot)",
        d.measured.runs
    );
    let mut chart = row_chart(
        &root,
        RowChart {
            caption: &caption,
            range: (lo, hi),
            labels: &labels,
            char_px: 8,
            label_size: 14,
            x_desc: "round trip of one call, nanoseconds (log scale)",
            y_desc: "hypercall",
            x_label: &log_label,
        },
    )?;
    let row = |i: usize| row_of(n, i);
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, l))| {
            ErrorBar::new_horizontal(
                SegmentValue::CenterOf(row(i)),
                l.min_ns,
                l.median_ns.median,
                l.max_ns,
                grey.stroke_width(1),
                14,
            )
        }))
        .map_err(err)?
        .label("fastest to slowest call, all boots; circle: median of the medians")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
    let teal = RGBColor(0, 128, 128);
    chart
        .draw_series(rows.iter().enumerate().flat_map(|(i, (_, l))| {
            l.runs.iter().filter_map(move |r| {
                Some(PathElement::new(
                    [
                        (r.p10_ns? as f64, SegmentValue::CenterOf(row(i))),
                        (r.p90_ns? as f64, SegmentValue::CenterOf(row(i))),
                    ],
                    teal.stroke_width(5),
                ))
            })
        }))
        .map_err(err)?
        .label("10th–90th percentile, each boot")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], teal.stroke_width(5)));
    chart
        .draw_series(rows.iter().enumerate().flat_map(|(i, (_, l))| {
            l.runs.iter().map(move |r| {
                Circle::new(
                    (r.median_ns as f64, SegmentValue::CenterOf(row(i))),
                    3,
                    BLUE.filled(),
                )
            })
        }))
        .map_err(err)?
        .label("median, each boot")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, l))| {
            Text::new(
                format!("{:.0} ns", l.median_ns.median),
                (l.median_ns.median, SegmentValue::Exact(row(i) + 1)),
                (FONT, 12).into_font().color(&BLACK),
            )
        }))
        .map_err(err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The blk workloads (each at its queue depth): requests/s on the image,
/// on null-co and in the Linux guest, side by side.
fn blk_depths(b: &BlkBench, path: &Path) -> Result<(), String> {
    let rows: Vec<(&String, &crate::report::BlkWorkload)> = b.workloads.iter().collect();
    let n = rows.len();
    let series: [(&str, RGBColor); 3] = [
        (
            "zvtest, 1 GiB image (reads checked)",
            RGBColor(31, 119, 180),
        ),
        ("zvtest, null-co", RGBColor(255, 127, 14)),
        ("Linux guest (fio)", RGBColor(44, 160, 44)),
    ];
    let value = |w: &crate::report::BlkWorkload, k: usize| match k {
        0 => w.image.as_ref().map(|f| f.requests_per_s.median),
        1 => w.null_co.as_ref().map(|f| f.requests_per_s.median),
        _ => w.linux.map(|l| l.requests_per_s),
    };
    let top = rows
        .iter()
        .flat_map(|(_, w)| (0..3).filter_map(|k| value(w, k)))
        .fold(1.0, f64::max)
        * 1.15;
    let labels: Vec<String> = rows
        .iter()
        .map(|(name, w)| match w.queue_depth {
            Some(d) => format!("{name} (depth {d})"),
            None => name.to_string(),
        })
        .collect();
    let root = SVGBackend::new(path, (WIDTH, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Block requests/s by workload and queue depth ({} ms per workload, boots: {})",
                b.ms_per_workload, b.measured.runs
            ),
            (FONT, 22),
        )
        .margin(16)
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((0..(n as i32 - 1).max(1)).into_segmented(), 0f64..top)
        .map_err(err)?;
    let name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(k) if (*k as usize) < n => labels[*k as usize].clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&name)
        .x_desc("workload (fio's name; depth: requests kept in flight)")
        .y_desc("requests per second (median)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    // Three bars side by side in each workload's slot (pixels).
    let slot = chart.plotting_area().dim_in_pixel().0 / n.max(2) as u32;
    let bar_width = slot / 4;
    for (k, (what, colour)) in series.iter().enumerate() {
        // No Linux figures without --linux: no empty legend entry.
        if rows.iter().all(|(_, w)| value(w, k).is_none()) {
            continue;
        }
        let colour = *colour;
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, (_, w))| {
                let v = value(w, k)?;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i as i32), 0.0),
                        (SegmentValue::Exact(i as i32 + 1), v),
                    ],
                    colour.filled(),
                );
                let left = bar_width / 2 + bar_width * k as u32;
                bar.set_margin(0, 0, left, slot.saturating_sub(left + bar_width));
                Some(bar)
            }))
            .map_err(err)?
            .label(*what)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_of_a_small_report() {
        let dir = std::env::temp_dir().join(format!("zvtest-plots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = write_all(&crate::report::tests::sample(), &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "boot-to-verdict.svg",
                "queue-rates.svg",
                "hypercall-latency.svg",
                "blk-queue-depth.svg",
                "streams-queue-rates.svg"
            ]
        );
        let svg = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        for (name, words) in [
            (
                "boot-to-verdict.svg",
                &[
                    "Boot to verdict, default scenario (2 boots",
                    "seconds from start to verdict",
                    "median to verdict 6.20 s",
                ][..],
            ),
            (
                "queue-rates.svg",
                &[
                    "Requests/s per queue, default scenario",
                    "requests per second (log scale)",
                    "net fe.0.0002 rx0 packed (depth 19)",
                ],
            ),
            (
                "hypercall-latency.svg",
                &[
                    "Hypercall latency",
                    "nanoseconds (log scale)",
                    "diag500.notify",
                    "1733 ns",
                ],
            ),
            (
                "blk-queue-depth.svg",
                &[
                    "Block requests/s by workload and queue depth",
                    "randread4k_qd32 (depth 32)",
                    "Linux guest (fio)",
                ],
            ),
        ] {
            let text = svg(name);
            assert!(
                text.starts_with("<svg"),
                "{name}: {}",
                &text[..80.min(text.len())]
            );
            assert!(text.trim_end().ends_with("</svg>"), "{name}");
            for w in words {
                assert!(text.contains(w), "{name}: no '{w}'");
            }
        }
        // The sample has no null-co figures: no legend entry for them.
        assert!(!svg("blk-queue-depth.svg").contains("zvtest, null-co"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn log_axis_labels() {
        let labels: Vec<String> = [1000.0, 2000.0, 3000.0, 5000.0, 9000.0, 20_000.0, 0.0]
            .iter()
            .map(log_label)
            .collect();
        assert_eq!(labels, ["1000", "2000", "", "5000", "", "20000", ""]);
    }

    #[test]
    fn devices_of_labels() {
        assert_eq!(
            device("blk fe.0.0001 q0 rev 2 split random"),
            "blk fe.0.0001"
        );
        assert_eq!(
            device("virtio rng fe.0.0004 rev 2 split"),
            "virtio rng fe.0.0004"
        );
    }
}
