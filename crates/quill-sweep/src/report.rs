//! A sweep's report, from its study: the run table and loss plots of quill-report (pruned
//! trials faded), the parallel-coordinates plot and the metric against each parameter,
//! parameter importances, each point's mean ± sd over its repeats with the ties of the best,
//! and `best.toml`, the config that `train --config best.toml` reproduces the best trial with.
//! `sweep --status` prints the study's table from the same state.

use std::fmt::Write;
use std::path::Path;

use quill_report::importance::importances;
use quill_report::study_plots::{ParamAxis, TrialPoint, metric_vs_params, parallel_coordinates};
use quill_report::{RunRecord, SWEEP_FILE, SweepEntry, SweepIndex};

use crate::file::SweepFile;
use crate::study::{State, Status, Study, TrialState};

/// Every file of the report; returns the runs, best first.
pub fn write_report(sweep: &SweepFile, dir: &Path, log_y: bool) -> Result<Vec<RunRecord>, String> {
    let state = State::replay(&Study::new(dir).read()?);
    let keys = sweep.keys();
    let index = SweepIndex {
        keys: keys.clone(),
        runs: state
            .trials
            .iter()
            .map(|t| SweepEntry {
                name: t.name.clone(),
                values: keys
                    .iter()
                    .map(|k| {
                        t.values
                            .iter()
                            .find(|(key, _)| key == k)
                            .map_or(String::new(), |(_, v)| v.clone())
                    })
                    .collect(),
                status: matches!(t.status, Status::Pruned { .. }).then(|| "pruned".into()),
            })
            .collect(),
    };
    let path = dir.join(SWEEP_FILE);
    let json = serde_json::to_string_pretty(&index).expect("the index serializes");
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    let runs = quill_report::report(dir, log_y).map_err(|e| e.to_string())?;

    let axes: Vec<ParamAxis> = sweep
        .params
        .iter()
        .map(|p| ParamAxis {
            name: p.key.clone(),
            log: p.is_log(),
            categories: p.labels(),
        })
        .collect();
    let points: Vec<TrialPoint> = state
        .trials
        .iter()
        .map(|t| TrialPoint {
            label: t.name.clone(),
            values: t.point.iter().map(|x| x.unwrap_or(f64::NAN)).collect(),
            metric: t.best().unwrap_or(f64::NAN),
            pruned: matches!(t.status, Status::Pruned { .. }),
        })
        .collect();
    if points.iter().any(|p| p.metric.is_finite()) {
        parallel_coordinates(&dir.join("parallel"), &axes, &points)?;
        metric_vs_params(&dir.join("params"), &axes, &points)?;
    }
    let mut extra = String::new();
    let _ = writeln!(extra, "\n## Study\n");
    let _ = writeln!(
        extra,
        "{} trials: {}; {} optimizer steps in all, {:.0} s of wall time.\n",
        state.trials.len(),
        counts(&state),
        state.total_steps(),
        state.wall_s
    );
    extra.push_str(&importance_table(&axes, &points));
    extra.push_str(&repeat_table(&state, sweep.repeats));
    if let Some(best) = best_trial(&state) {
        let source = dir.join(".trials").join(format!("{}.toml", best.name));
        let config =
            std::fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        let text = format!(
            "# The best trial of sweep {}: {} (best val loss {:.4}).\n# `train --config best.toml` trains it again, the same config and seed.\n{config}",
            sweep.path.display(),
            best.name,
            best.best().unwrap_or(f64::NAN)
        );
        let best_path = dir.join("best.toml");
        std::fs::write(&best_path, text).map_err(|e| format!("{}: {e}", best_path.display()))?;
        let _ = writeln!(
            extra,
            "Best trial: `{}`; its config is `best.toml`.\n",
            best.name
        );
    }
    let _ = writeln!(
        extra,
        "Plots: `val_loss.png` (pruned trials faded), `parallel.png`, `params.png`."
    );
    let summary = dir.join("summary.md");
    let mut text = std::fs::read_to_string(&summary).unwrap_or_default();
    text.push_str(&extra);
    std::fs::write(&summary, text).map_err(|e| format!("{}: {e}", summary.display()))?;
    Ok(runs)
}

/// The finished trial with the lowest best val loss.
pub fn best_trial(state: &State) -> Option<&TrialState> {
    state
        .trials
        .iter()
        .filter(|t| matches!(t.status, Status::Finished { .. }))
        .filter(|t| t.best().is_some_and(f64::is_finite))
        .min_by(|a, b| a.best().unwrap().total_cmp(&b.best().unwrap()))
}

fn counts(state: &State) -> String {
    let mut labels: Vec<(&str, usize)> = Vec::new();
    for t in &state.trials {
        let label = t.status.label();
        match labels.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => labels.push((label, 1)),
        }
    }
    labels
        .iter()
        .map(|(l, n)| format!("{n} {l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn importance_table(axes: &[ParamAxis], points: &[TrialPoint]) -> String {
    let shares = importances(axes, points);
    if axes.len() < 2 || shares.iter().all(|(_, s)| *s == 0.0) {
        return String::new();
    }
    let mut out = String::from(
        "Parameter importance: each parameter's share of the variance of the finished trials' best val loss explained by grouping the trials by that parameter alone (the correlation ratio η², values in up to 4 quantile bins, normalised to sum to 1; a one-at-a-time measure without interactions, noisy under ~10 trials).\n\n| parameter | importance |\n| --- | --- |\n",
    );
    for (name, share) in shares {
        let _ = writeln!(out, "| {name} | {share:.2} |");
    }
    out.push('\n');
    out
}

/// Mean ± sd of each point over its repeats; `tie` where the mean is within two standard
/// errors of the best point's.
fn repeat_table(state: &State, repeats: usize) -> String {
    if repeats < 2 {
        return String::new();
    }
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for t in &state.trials {
        let Status::Finished { best_val_loss, .. } = t.status else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, v)) => v.push(best_val_loss),
            None => groups.push((t.group.clone(), vec![best_val_loss])),
        }
    }
    let stats: Vec<(String, usize, f64, f64)> = groups
        .into_iter()
        .map(|(g, v)| {
            let (mean, sd) = mean_sd(&v);
            (g, v.len(), mean, sd)
        })
        .collect();
    let Some(best) = stats.iter().min_by(|a, b| a.2.total_cmp(&b.2)) else {
        return String::new();
    };
    let se = |n: usize, sd: f64| sd / (n as f64).sqrt();
    let mut sorted = stats.clone();
    sorted.sort_by(|a, b| a.2.total_cmp(&b.2));
    let mut out = format!(
        "Points over {repeats} seeds (best val loss, mean ± sd); `tie` marks a mean within two standard errors of the best one's.\n\n| point | seeds | mean | sd | |\n| --- | --- | --- | --- | --- |\n"
    );
    for (g, n, mean, sd) in &sorted {
        let margin = 2.0 * se(*n, *sd).max(se(best.1, best.3));
        let mark = if g == &best.0 {
            "best"
        } else if mean - best.2 <= margin {
            "tie"
        } else {
            ""
        };
        let _ = writeln!(out, "| {g} | {n} | {mean:.4} | {sd:.4} | {mark} |");
    }
    out.push('\n');
    out
}

pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = match values.len() {
        0 | 1 => 0.0,
        _ => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0),
    };
    (mean, var.sqrt())
}

/// The study's table for `sweep --status`: one line per trial.
pub fn status_table(dir: &Path) -> Result<String, String> {
    let study = Study::new(dir);
    if !study.file().exists() {
        return Err(format!(
            "{} has no study ({} is missing)",
            dir.display(),
            study.file().display()
        ));
    }
    let state = State::replay(&study.read()?);
    let mut out = format!(
        "{}: {} trials ({}); {} steps, {:.0} s\n",
        dir.display(),
        state.trials.len(),
        counts(&state),
        state.total_steps(),
        state.wall_s
    );
    let _ = writeln!(
        out,
        "{:>4}  {:<10} {:>6}  {:>9}  trial",
        "#", "status", "step", "best val"
    );
    for t in &state.trials {
        let status = match (&t.status, study.is_running(&t.name)) {
            (Status::Running { .. }, false) => "stopped",
            (s, _) => s.label(),
        };
        let best = t.best().map_or("-".into(), |b| format!("{b:.4}"));
        let _ = writeln!(
            out,
            "{:>4}  {:<10} {:>6}  {:>9}  {}",
            t.number,
            status,
            t.last_step(),
            best,
            t.name
        );
    }
    if let Some(best) = best_trial(&state) {
        let _ = writeln!(
            out,
            "best: {} ({:.4})",
            best.name,
            best.best().unwrap_or(f64::NAN)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[2.5]), (2.5, 0.0));
    }
}
