//! Which parameters mattered: for each, the share of the metric's variance explained by
//! grouping the trials by that parameter alone, the correlation ratio
//! `η² = Σ_groups n_g (mean_g − mean)² / Σ_trials (y − mean)²`. A choice groups by value; a
//! number by its value where it took at most 4, else into 4 quantile bins (of its log where
//! it is searched on a log scale). Pruned trials and those without a metric are left out, as
//! is a trial where the parameter was inactive. The shares are normalised to sum to 1.
//!
//! A one-at-a-time measure: cheap, readable and honest for the few dozen trials a sweep has,
//! where fANOVA's random forest (Optuna's default) would be noise; it misses interactions.

use crate::study_plots::{ParamAxis, TrialPoint};

const BINS: usize = 4;

/// `(parameter, share)`, most important first; all zero when nothing varies.
pub fn importances(axes: &[ParamAxis], points: &[TrialPoint]) -> Vec<(String, f64)> {
    let used: Vec<&TrialPoint> = points
        .iter()
        .filter(|p| !p.pruned && p.metric.is_finite())
        .collect();
    let raw: Vec<f64> = (0..axes.len())
        .map(|i| {
            let pairs: Vec<(f64, f64)> = used
                .iter()
                .filter_map(|p| {
                    let x = p.values.get(i).copied().filter(|x| x.is_finite())?;
                    let x = if axes[i].log && x > 0.0 { x.ln() } else { x };
                    Some((x, p.metric))
                })
                .collect();
            correlation_ratio(&groups(pairs))
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let mut shares: Vec<(String, f64)> = axes
        .iter()
        .zip(raw)
        .map(|(a, r)| (a.name.clone(), if total > 0.0 { r / total } else { 0.0 }))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    shares
}

/// The metrics grouped by value, or by quantile bin where there are more than `BINS` values.
fn groups(mut pairs: Vec<(f64, f64)>) -> Vec<Vec<f64>> {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut distinct: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    distinct.dedup();
    let group_of = |x: f64| -> usize {
        let rank = distinct.iter().position(|d| *d == x).unwrap_or(0);
        match distinct.len() <= BINS {
            true => rank,
            false => rank * BINS / distinct.len(),
        }
    };
    let mut groups = vec![Vec::new(); distinct.len().min(BINS)];
    for (x, y) in pairs {
        groups[group_of(x)].push(y);
    }
    groups
}

fn correlation_ratio(groups: &[Vec<f64>]) -> f64 {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    if all.len() < 3 || groups.len() < 2 {
        return 0.0;
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let total: f64 = all.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let between: f64 = groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let m = g.iter().sum::<f64>() / g.len() as f64;
            g.len() as f64 * (m - mean).powi(2)
        })
        .sum();
    between / total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(name: &str, log: bool) -> ParamAxis {
        ParamAxis {
            name: name.into(),
            log,
            categories: None,
        }
    }

    #[test]
    fn the_parameter_that_moves_the_metric_ranks_first() {
        // lr decides the loss; dropout takes every value with every lr and does nothing.
        let lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2];
        let mut points = Vec::new();
        for (i, lr) in lrs.iter().enumerate() {
            for d in [0.0, 0.1, 0.2] {
                points.push(TrialPoint {
                    label: String::new(),
                    values: vec![*lr, d],
                    metric: 2.0 + (i as f64 - 2.0).powi(2) * 0.1,
                    pruned: false,
                });
            }
        }
        // A pruned trial with a wild metric changes nothing.
        points.push(TrialPoint {
            label: String::new(),
            values: vec![1e-4, 0.2],
            metric: 50.0,
            pruned: true,
        });
        let shares = importances(
            &[axis("optimizer.lr", true), axis("model.dropout", false)],
            &points,
        );
        assert_eq!(shares[0].0, "optimizer.lr");
        assert!((shares[0].1 - 1.0).abs() < 1e-9, "{shares:?}");
        assert!(shares[1].1.abs() < 1e-9);
    }

    #[test]
    fn many_values_go_into_four_quantile_bins() {
        let pairs: Vec<(f64, f64)> = (0..12).map(|i| (i as f64, i as f64)).collect();
        let groups = groups(pairs);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 3]
        );
    }

    #[test]
    fn nothing_to_explain_gives_zeros() {
        let points: Vec<TrialPoint> = (0..4)
            .map(|i| TrialPoint {
                label: String::new(),
                values: vec![i as f64, f64::NAN],
                metric: 1.0,
                pruned: false,
            })
            .collect();
        let shares = importances(&[axis("a", false), axis("b", false)], &points);
        assert!(shares.iter().all(|(_, s)| *s == 0.0));
    }
}
