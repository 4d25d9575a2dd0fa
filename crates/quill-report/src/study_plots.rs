//! A sweep's trials drawn against its parameters, each plot as PNG and SVG:
//! [`parallel_coordinates`] (one vertical axis per parameter and one for the metric, a line
//! per trial coloured from best, dark blue, to worst, orange) and [`metric_vs_params`] (the
//! metric against each parameter, one panel each). Pruned trials are pale; a parameter a trial
//! did not use (`when` was false) is a gap in its line and no dot in that panel.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::register_font;

/// One parameter: its name, whether it is searched on a log scale, its choices' labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamAxis {
    pub name: String,
    pub log: bool,
    /// For a choice: the labels of its values; a point's value is the index.
    pub categories: Option<Vec<String>>,
}

/// One trial: a value per axis (NaN where the parameter was inactive), its metric (lower is
/// better; NaN when it has none yet).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialPoint {
    pub label: String,
    pub values: Vec<f64>,
    pub metric: f64,
    pub pruned: bool,
}

const BEST: (f64, f64, f64) = (33.0, 72.0, 150.0);
const WORST: (f64, f64, f64) = (240.0, 150.0, 60.0);

/// Best (0) to worst (1).
fn shade(t: f64, faded: bool) -> RGBAColor {
    let mix = |a: f64, b: f64| (a + (b - a) * t.clamp(0.0, 1.0)) as u8;
    let color = RGBColor(
        mix(BEST.0, WORST.0),
        mix(BEST.1, WORST.1),
        mix(BEST.2, WORST.2),
    );
    match faded {
        true => color.mix(0.2),
        false => color.mix(0.9),
    }
}

/// Each point's place from best (0) to worst (1) by rank among the points with a metric.
fn ranks(points: &[TrialPoint]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|i| points[*i].metric.is_finite())
        .collect();
    order.sort_by(|a, b| points[*a].metric.total_cmp(&points[*b].metric));
    let mut rank = vec![1.0; points.len()];
    let last = order.len().saturating_sub(1).max(1) as f64;
    for (r, i) in order.iter().enumerate() {
        rank[*i] = r as f64 / last;
    }
    rank
}

/// Where a value lies on its axis, from 0 (bottom) to 1 (top), and the axis' end labels.
struct Scale {
    low: f64,
    high: f64,
    log: bool,
    categories: Option<Vec<String>>,
}

impl Scale {
    fn of(values: impl Iterator<Item = f64>, log: bool, categories: Option<Vec<String>>) -> Scale {
        if let Some(labels) = &categories {
            return Scale {
                low: 0.0,
                high: labels.len().saturating_sub(1) as f64,
                log: false,
                categories,
            };
        }
        let t = |x: f64| if log { x.ln() } else { x };
        let finite: Vec<f64> = values
            .filter(|x| x.is_finite() && (!log || *x > 0.0))
            .map(t)
            .collect();
        let low = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let high = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match low.is_finite() {
            true => Scale {
                low,
                high,
                log,
                categories,
            },
            false => Scale {
                low: 0.0,
                high: 1.0,
                log: false,
                categories,
            },
        }
    }

    fn place(&self, x: f64) -> Option<f64> {
        let y = if self.log { x.ln() } else { x };
        if !y.is_finite() {
            return None;
        }
        Some(match self.high > self.low {
            true => (y - self.low) / (self.high - self.low),
            false => 0.5,
        })
    }

    /// Labels and their places: each choice, or the two ends of a number's range.
    fn ticks(&self) -> Vec<(f64, String)> {
        if let Some(labels) = &self.categories {
            let n = labels.len().saturating_sub(1).max(1) as f64;
            return labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64 / n, l.clone()))
                .collect();
        }
        let value = |y: f64| if self.log { y.exp() } else { y };
        let ends = [(0.0, value(self.low)), (1.0, value(self.high))];
        let ends = if self.high > self.low {
            &ends[..]
        } else {
            &ends[..1]
        };
        ends.iter()
            .map(|(p, v)| (if self.high > self.low { *p } else { 0.5 }, number(*v)))
            .collect()
    }
}

fn number(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e4) {
        format!("{x:.2e}")
    } else {
        format!("{}", (x * 1e4).round() / 1e4)
    }
}

/// `stem.png` and `stem.svg`: a parallel-coordinates plot of the trials with a metric.
pub fn parallel_coordinates(
    stem: &Path,
    axes: &[ParamAxis],
    points: &[TrialPoint],
) -> Result<(), String> {
    both(
        stem,
        (1100, 620),
        |area| draw_parallel(area, axes, points),
        |area| draw_parallel(area, axes, points),
    )
}

/// `stem.png` and `stem.svg`: the metric against each parameter, one panel per parameter.
pub fn metric_vs_params(
    stem: &Path,
    axes: &[ParamAxis],
    points: &[TrialPoint],
) -> Result<(), String> {
    let columns = axes.len().clamp(1, 3);
    let rows = axes.len().div_ceil(columns).max(1);
    let size = (380 * columns as u32, 320 * rows as u32);
    both(
        stem,
        size,
        |area| draw_params(area, axes, points),
        |area| draw_params(area, axes, points),
    )
}

fn both(
    stem: &Path,
    size: (u32, u32),
    png: impl FnOnce(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
    svg: impl FnOnce(DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    register_font();
    let (png_path, svg_path) = (stem.with_extension("png"), stem.with_extension("svg"));
    png(BitMapBackend::new(&png_path, size).into_drawing_area())
        .map_err(|e| format!("{}: {e}", png_path.display()))?;
    svg(SVGBackend::new(&svg_path, size).into_drawing_area())
        .map_err(|e| format!("{}: {e}", svg_path.display()))
}

fn draw_parallel<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    axes: &[ParamAxis],
    points: &[TrialPoint],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let mut scales: Vec<Scale> = axes
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Scale::of(
                points
                    .iter()
                    .map(|p| p.values.get(i).copied().unwrap_or(f64::NAN)),
                a.log,
                a.categories.clone(),
            )
        })
        .collect();
    scales.push(Scale::of(points.iter().map(|p| p.metric), false, None));
    let mut names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    names.push("best val loss");
    let n = scales.len();
    let mut chart = ChartBuilder::on(&root)
        .caption("trials by parameter (dark: best)", ("sans-serif", 22))
        .margin(24)
        .margin_left(70)
        .margin_right(70)
        .margin_top(16)
        .build_cartesian_2d(-0.05f64..(n - 1).max(1) as f64 + 0.05, -0.12f64..1.12)
        .map_err(|e| e.to_string())?;
    let rank = ranks(points);
    // Pruned trials first and worst-to-best, so the best lines lie on top.
    let mut order: Vec<usize> = (0..points.len())
        .filter(|i| points[*i].metric.is_finite())
        .collect();
    order.sort_by(|a, b| {
        (!points[*a].pruned)
            .cmp(&!points[*b].pruned)
            .then(rank[*b].total_cmp(&rank[*a]))
    });
    for i in order {
        let p = &points[i];
        let color = shade(rank[i], p.pruned);
        let places: Vec<Option<f64>> = scales
            .iter()
            .enumerate()
            .map(|(k, s)| {
                s.place(if k + 1 == n {
                    p.metric
                } else {
                    p.values.get(k).copied().unwrap_or(f64::NAN)
                })
            })
            .collect();
        for k in 0..n.saturating_sub(1) {
            if let (Some(a), Some(b)) = (places[k], places[k + 1]) {
                let line = PathElement::new(
                    vec![(k as f64, a), ((k + 1) as f64, b)],
                    color.stroke_width(if p.pruned { 1 } else { 2 }),
                );
                chart
                    .draw_series(std::iter::once(line))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let text = |size| ("sans-serif", size).into_font().color(&BLACK);
    for (k, (scale, name)) in scales.iter().zip(&names).enumerate() {
        let x = k as f64;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| e.to_string())?;
        let title = Text::new(
            name.to_string(),
            (x, 1.08),
            text(15).pos(Pos::new(HPos::Center, VPos::Center)),
        );
        chart
            .draw_series(std::iter::once(title))
            .map_err(|e| e.to_string())?;
        for (place, label) in scale.ticks() {
            let tick = Text::new(
                label,
                (x, place),
                text(13).pos(Pos::new(HPos::Right, VPos::Center)),
            );
            chart
                .draw_series(std::iter::once(tick))
                .map_err(|e| e.to_string())?;
        }
        if scale.log {
            let note = Text::new(
                "(log)".to_string(),
                (x, -0.07),
                text(12).pos(Pos::new(HPos::Center, VPos::Center)),
            );
            chart
                .draw_series(std::iter::once(note))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(err)
}

fn draw_params<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    axes: &[ParamAxis],
    points: &[TrialPoint],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let columns = axes.len().clamp(1, 3);
    let rows = axes.len().div_ceil(columns).max(1);
    let panels = root.split_evenly((rows, columns));
    let metrics = || points.iter().map(|p| p.metric).filter(|m| m.is_finite());
    let y_low = metrics().fold(f64::INFINITY, f64::min);
    let y_high = metrics().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((y_high - y_low) * 0.08).max(1e-3);
    let (y_low, y_high) = (y_low - pad, y_high + pad);
    let rank = ranks(points);
    for (i, (axis, panel)) in axes.iter().zip(panels).enumerate() {
        let scale = Scale::of(
            points
                .iter()
                .map(|p| p.values.get(i).copied().unwrap_or(f64::NAN)),
            axis.log,
            axis.categories.clone(),
        );
        // Plotted in the scale's own coordinates (log where log), labelled with the values.
        let (x_low, x_high) = match scale.high > scale.low {
            true => (scale.low, scale.high),
            false => (scale.low - 1.0, scale.high + 1.0),
        };
        let x_pad = (x_high - x_low) * 0.08;
        let mut chart = ChartBuilder::on(&panel)
            .caption(&axis.name, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(x_low - x_pad..x_high + x_pad, y_low..y_high)
            .map_err(|e| e.to_string())?;
        let categories = axis.categories.clone();
        let log = scale.log;
        let x_label = move |x: &f64| match &categories {
            Some(labels) if (x - x.round()).abs() < 1e-6 && *x >= 0.0 => {
                labels.get(x.round() as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None if log => number(x.exp()),
            None => number(*x),
        };
        let x_labels = match &axis.categories {
            Some(labels) => labels.len().max(2),
            None => 5,
        };
        chart
            .configure_mesh()
            .x_labels(x_labels)
            .x_label_formatter(&x_label)
            .y_desc("best val loss")
            .label_style(("sans-serif", 12))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| e.to_string())?;
        let dots = points.iter().enumerate().filter_map(|(k, p)| {
            let x = p.values.get(i).copied().filter(|x| x.is_finite())?;
            let x = if log { x.ln() } else { x };
            p.metric.is_finite().then(|| {
                let color = shade(rank[k], p.pruned);
                Circle::new((x, p.metric), if p.pruned { 3 } else { 4 }, color.filled())
            })
        });
        chart.draw_series(dots).map_err(|e| e.to_string())?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> (Vec<ParamAxis>, Vec<TrialPoint>) {
        let axes = vec![
            ParamAxis {
                name: "optimizer.lr".into(),
                log: true,
                categories: None,
            },
            ParamAxis {
                name: "model.n_layer".into(),
                log: false,
                categories: None,
            },
            ParamAxis {
                name: "data.tokenizer".into(),
                log: false,
                categories: Some(vec!["char".into(), "bpe".into()]),
            },
        ];
        let points = (0..8)
            .map(|k| TrialPoint {
                label: format!("t{k}"),
                values: vec![
                    1e-4 * 2f64.powi(k),
                    (k % 4 + 1) as f64,
                    if k == 3 { f64::NAN } else { (k % 2) as f64 },
                ],
                metric: if k == 7 {
                    f64::NAN
                } else {
                    2.0 + (k as f64 - 3.0).abs() * 0.1
                },
                pruned: k == 5,
            })
            .collect();
        (axes, points)
    }

    #[test]
    fn both_plots_write_png_and_svg_with_the_axis_names() {
        let dir = tempfile::tempdir().unwrap();
        let (axes, points) = points();
        parallel_coordinates(&dir.path().join("parallel"), &axes, &points).unwrap();
        metric_vs_params(&dir.path().join("params"), &axes, &points).unwrap();
        for stem in ["parallel", "params"] {
            let png = std::fs::read(dir.path().join(format!("{stem}.png"))).unwrap();
            assert_eq!(&png[1..4], b"PNG");
            let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
            for name in ["optimizer.lr", "model.n_layer", "data.tokenizer"] {
                assert!(svg.contains(name), "{stem}.svg lacks {name}");
            }
        }
        let svg = std::fs::read_to_string(dir.path().join("parallel.svg")).unwrap();
        assert!(svg.contains("best val loss") && svg.contains("(log)") && svg.contains("bpe"));
    }

    #[test]
    fn scales_and_ranks() {
        let s = Scale::of([1e-4, 1e-2, f64::NAN].into_iter(), true, None);
        assert!((s.place(1e-3).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(s.place(f64::NAN), None);
        assert_eq!(s.ticks()[1].1, "0.01");
        let (_, points) = points();
        let r = ranks(&points);
        assert_eq!(r[3], 0.0);
        assert_eq!(r[7], 1.0);
        assert!(r[2] < r[0]);
    }
}
