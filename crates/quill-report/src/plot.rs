//! Loss curves drawn with plotters, each as PNG and SVG. Text is rendered with a bundled
//! DejaVu Sans (through ab_glyph), so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use quill_train::metrics_csv::MetricsRow;

use crate::{ReportError, RunRecord};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

/// One line of a chart.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and pale (a sweep's pruned trials).
    pub faded: bool,
}

/// `RUN/loss.png` and `RUN/loss.svg`: a run's train and val loss against the step.
pub fn run_curves(
    dir: &Path,
    name: &str,
    rows: &[MetricsRow],
    log_y: bool,
) -> Result<(), ReportError> {
    let curves = [
        Curve {
            label: "train loss".into(),
            points: rows.iter().map(|r| (r.step as f64, r.train_loss)).collect(),
            faded: false,
        },
        Curve {
            label: "val loss".into(),
            points: rows.iter().map(|r| (r.step as f64, r.val_loss)).collect(),
            faded: false,
        },
    ];
    draw_both(&dir.join("loss"), name, &curves, log_y)
}

/// `DIR/val_loss.png` and `.svg`: every run's val loss, labelled with its swept values.
pub fn sweep_curves(dir: &Path, runs: &[&RunRecord], log_y: bool) -> Result<(), ReportError> {
    let curves: Vec<Curve> = runs
        .iter()
        .map(|run| Curve {
            label: run.label(),
            points: run
                .rows
                .iter()
                .map(|r| (r.step as f64, r.val_loss))
                .collect(),
            faded: matches!(run.status, crate::RunStatus::Pruned),
        })
        .collect();
    let title = dir
        .file_name()
        .map_or_else(|| "sweep".into(), |n| n.to_string_lossy().into_owned());
    draw_both(
        &dir.join("val_loss"),
        &format!("{title}: val loss"),
        &curves,
        log_y,
    )
}

/// Makes the bundled font the one every plot's "sans-serif" text is drawn in.
pub(crate) fn register_font() {
    REGISTER_FONT.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType font"));
    });
}

/// Draws `curves` to `stem.png` and `stem.svg`.
pub fn draw_both(
    stem: &Path,
    title: &str,
    curves: &[Curve],
    log_y: bool,
) -> Result<(), ReportError> {
    register_font();
    let size = (960, 600);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let error = |path: &Path, e: String| ReportError::File {
        path: path.to_owned(),
        message: e,
    };
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        curves,
        log_y,
    )
    .map_err(|e| error(&png, e))?;
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        curves,
        log_y,
    )
    .map_err(|e| error(&svg, e))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    curves: &[Curve],
    log_y: bool,
) -> Result<(), String> {
    let finite = || {
        curves
            .iter()
            .flat_map(|c| c.points.iter())
            .filter(|(_, y)| y.is_finite() && *y > 0.0)
    };
    let x_max = finite().map(|p| p.0).fold(1.0, f64::max);
    let y_min = finite().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = finite().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (y_min, y_max) = if y_min.is_finite() {
        let pad = ((y_max - y_min) * 0.05).max(1e-3);
        ((y_min - pad).max(1e-3), y_max + pad)
    } else {
        (0.1, 10.0)
    };
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(48)
        .y_label_area_size(64);

    // The same drawing for both axis kinds, whose chart types differ.
    macro_rules! chart {
        ($y_range:expr) => {{
            let mut chart = builder
                .build_cartesian_2d(0f64..x_max, $y_range)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("step")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_desc(if log_y { "loss (log scale)" } else { "loss" })
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| e.to_string())?;
            // Pruned trials first, pale and thin, so the others are drawn over them.
            let order = curves
                .iter()
                .enumerate()
                .filter(|(_, c)| c.faded)
                .chain(curves.iter().enumerate().filter(|(_, c)| !c.faded));
            for (i, curve) in order {
                let (color, width) = match curve.faded {
                    true => (Palette99::pick(i).mix(0.25), 1),
                    false => (Palette99::pick(i).to_rgba(), 2),
                };
                let points = curve
                    .points
                    .iter()
                    .copied()
                    .filter(|(_, y)| y.is_finite() && *y > 0.0);
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(width)))
                    .map_err(|e| e.to_string())?
                    .label(match curve.faded {
                        true => format!("{} (pruned)", curve.label),
                        false => curve.label.clone(),
                    })
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                    });
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if log_y {
        chart!((y_min..y_max).log_scale());
    } else {
        chart!(y_min..y_max);
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = tempfile::tempdir().unwrap();
        let curves = [Curve {
            label: "val loss".into(),
            points: vec![(50.0, 2.9), (100.0, 2.5), (150.0, 2.3)],
            faded: false,
        }];
        for log_y in [false, true] {
            draw_both(&dir.path().join("curve"), "a run", &curves, log_y).unwrap();
            let png = std::fs::read(dir.path().join("curve.png")).unwrap();
            assert_eq!(&png[1..4], b"PNG");
            assert!(png.len() > 10_000, "{} bytes", png.len());
            let svg = std::fs::read_to_string(dir.path().join("curve.svg")).unwrap();
            assert!(svg.contains("<svg") && svg.contains("val loss") && svg.contains("step"));
        }
    }
}
