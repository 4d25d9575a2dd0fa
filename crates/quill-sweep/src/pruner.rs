//! Pruning, decided after each evaluation of a trial from what the study holds:
//!
//! - **median** (Optuna's `MedianPruner`): from `min_steps` on, a trial whose best loss so far
//!   is worse than the median of the other trials' losses at the same step is pruned for good,
//!   once `n_startup` others have been evaluated there.
//! - **asha** (Li et al., asynchronous successive halving): rungs at `min_steps`·ηᵏ steps. A
//!   trial reaching a rung goes on while it is in the best ⌊n/η⌋ of the n trials that reached
//!   it so far, else it pauses there (checkpoint kept, status `pruned`); when a worker is free,
//!   a paused trial that the rung's later arrivals have put in the best ⌊n/η⌋ is promoted
//!   and resumes from its checkpoint, before any new trial starts.
//! - **hyperband** (Li et al.; asynchronous as in Ray Tune's `AsyncHyperBand`): brackets of
//!   ASHA whose first rungs are `min_steps`·ηᵇ, b = 0..⌊log_η(max/min)⌋, trials dealt to them in
//!   turn, so some trials are never cut early in case the short rungs mislead.
//!
//! Every trial keeps the learning-rate schedule of its full length: a rung only stops it.

use crate::file::{PrunerKind, PrunerSpec};
use crate::study::{State, Status, TrialState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Continue,
    /// Stop; ASHA may promote it later.
    Pause,
    /// Stop for good.
    Prune,
}

#[derive(Debug, Clone)]
pub struct Pruner {
    pub spec: PrunerSpec,
    pub max_steps: usize,
    pub eval_interval: usize,
}

impl Pruner {
    /// The first rung: `min_steps` rounded up to an evaluation step.
    fn first_rung(&self) -> usize {
        let e = self.eval_interval.max(1);
        self.spec.min_steps.max(e).div_ceil(e) * e
    }

    /// Hyperband's brackets (1 for ASHA).
    pub fn brackets(&self) -> usize {
        match self.spec.kind {
            PrunerKind::Hyperband => {
                let (mut r, mut n) = (self.first_rung(), 1);
                while r * self.spec.eta <= self.max_steps {
                    r *= self.spec.eta;
                    n += 1;
                }
                n
            }
            _ => 1,
        }
    }

    pub fn bracket(&self, trial: &TrialState) -> usize {
        trial.number % self.brackets()
    }

    /// The rung steps of `bracket`, below the last step.
    pub fn rungs(&self, bracket: usize) -> Vec<usize> {
        let mut r = self.first_rung() * self.spec.eta.pow(bracket as u32);
        let mut rungs = Vec::new();
        while r < self.max_steps {
            rungs.push(r);
            r *= self.spec.eta;
        }
        rungs
    }

    /// Whether `trial`, just evaluated at `step`, goes on.
    pub fn decide(&self, state: &State, trial: &TrialState, step: usize) -> Decision {
        if step >= self.max_steps {
            return Decision::Continue;
        }
        match self.spec.kind {
            PrunerKind::None => Decision::Continue,
            PrunerKind::Median => {
                if step < self.spec.min_steps {
                    return Decision::Continue;
                }
                let mut others: Vec<f64> = state
                    .trials
                    .iter()
                    .filter(|t| t.id != trial.id)
                    .filter_map(|t| t.at(step))
                    .filter(|l| l.is_finite())
                    .collect();
                if others.len() < self.spec.n_startup {
                    return Decision::Continue;
                }
                others.sort_by(f64::total_cmp);
                let n = others.len();
                let median = match n % 2 {
                    1 => others[n / 2],
                    _ => (others[n / 2 - 1] + others[n / 2]) / 2.0,
                };
                let best = trial
                    .evals
                    .iter()
                    .filter(|(s, _)| *s <= step)
                    .map(|(_, l)| if l.is_finite() { *l } else { f64::INFINITY })
                    .fold(f64::INFINITY, f64::min);
                match best > median {
                    true => Decision::Prune,
                    false => Decision::Continue,
                }
            }
            PrunerKind::Asha | PrunerKind::Hyperband => {
                let bracket = self.bracket(trial);
                if !self.rungs(bracket).contains(&step) {
                    return Decision::Continue;
                }
                match self.in_top(state, bracket, step, &trial.id) {
                    true => Decision::Continue,
                    false => Decision::Pause,
                }
            }
        }
    }

    /// Whether trial `id` is in the best ⌊n/η⌋ of the n trials of `bracket` evaluated at `rung`.
    fn in_top(&self, state: &State, bracket: usize, rung: usize, id: &str) -> bool {
        let mut at_rung: Vec<(f64, usize, &str)> = state
            .trials
            .iter()
            .filter(|t| self.bracket(t) == bracket)
            .filter_map(|t| {
                let loss = t.at(rung)?;
                Some((
                    if loss.is_finite() {
                        loss
                    } else {
                        f64::INFINITY
                    },
                    t.number,
                    t.id.as_str(),
                ))
            })
            .collect();
        at_rung.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let keep = at_rung.len() / self.spec.eta;
        at_rung[..keep].iter().any(|(_, _, t)| *t == id)
    }

    /// A paused trial to promote now, highest rung first; `running` tells the trials some
    /// process runs now.
    pub fn promotable<'s>(
        &self,
        state: &'s State,
        running: &dyn Fn(&TrialState) -> bool,
    ) -> Option<&'s TrialState> {
        if !matches!(self.spec.kind, PrunerKind::Asha | PrunerKind::Hyperband) {
            return None;
        }
        let mut best: Option<(usize, &TrialState)> = None;
        for trial in &state.trials {
            let Status::Pruned { step, fin: false } = trial.status else {
                continue;
            };
            if running(trial) || !self.in_top(state, self.bracket(trial), step, &trial.id) {
                continue;
            }
            if best.is_none_or(|(s, _)| step > s) {
                best = Some((step, trial));
            }
        }
        best.map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pruner(kind: PrunerKind) -> Pruner {
        Pruner {
            spec: PrunerSpec {
                kind,
                eta: 3,
                min_steps: 30,
                n_startup: 2,
            },
            max_steps: 270,
            eval_interval: 30,
        }
    }

    fn trial(number: usize, evals: &[(usize, f64)], status: Status) -> TrialState {
        TrialState {
            id: format!("t{number}"),
            number,
            name: format!("t{number}"),
            group: format!("t{number}"),
            values: Vec::new(),
            point: Vec::new(),
            draw: None,
            status,
            evals: evals.to_vec(),
            starts: 1,
        }
    }

    fn running() -> Status {
        Status::Running { owner: "me".into() }
    }

    #[test]
    fn asha_rungs_and_brackets() {
        let asha = pruner(PrunerKind::Asha);
        assert_eq!(asha.rungs(0), [30, 90]);
        let hyperband = pruner(PrunerKind::Hyperband);
        assert_eq!(hyperband.brackets(), 3);
        assert_eq!(hyperband.rungs(1), [90]);
        assert!(hyperband.rungs(2).is_empty());
    }

    #[test]
    fn asha_keeps_the_best_third_at_a_rung_and_promotes_a_paused_one_later() {
        let asha = pruner(PrunerKind::Asha);
        let mut state = State::default();
        state.trials.push(trial(0, &[(30, 2.0)], running()));
        // Alone at the rung: ⌊1/3⌋ = 0 go on.
        assert_eq!(asha.decide(&state, &state.trials[0], 30), Decision::Pause);
        state.trials[0].status = Status::Pruned {
            step: 30,
            fin: false,
        };
        state.trials.push(trial(
            1,
            &[(30, 3.0)],
            Status::Pruned {
                step: 30,
                fin: false,
            },
        ));
        assert!(asha.promotable(&state, &|_| false).is_none());
        state.trials.push(trial(2, &[(30, 2.5)], running()));
        // Three at the rung: the best one (trial 0, paused) is promoted, not trial 2.
        assert_eq!(asha.decide(&state, &state.trials[2], 30), Decision::Pause);
        assert_eq!(asha.promotable(&state, &|_| false).unwrap().id, "t0");
        assert!(asha.promotable(&state, &|t| t.id == "t0").is_none());
        // Not a rung: go on.
        assert_eq!(
            asha.decide(&state, &state.trials[2], 60),
            Decision::Continue
        );
        // The last step is never pruned.
        assert_eq!(
            asha.decide(&state, &state.trials[2], 270),
            Decision::Continue
        );
    }

    #[test]
    fn median_prunes_a_trial_worse_than_the_others_median() {
        let median = pruner(PrunerKind::Median);
        let mut state = State::default();
        state.trials.push(trial(
            0,
            &[(30, 2.0), (60, 1.8)],
            Status::Finished {
                best_val_loss: 1.7,
                steps: 270,
            },
        ));
        state.trials.push(trial(
            1,
            &[(30, 2.2), (60, 2.0)],
            Status::Finished {
                best_val_loss: 1.9,
                steps: 270,
            },
        ));
        state
            .trials
            .push(trial(2, &[(30, 2.5), (60, 2.4)], running()));
        state
            .trials
            .push(trial(3, &[(30, 2.05), (60, 1.85)], running()));
        assert_eq!(median.decide(&state, &state.trials[2], 60), Decision::Prune);
        assert_eq!(
            median.decide(&state, &state.trials[3], 60),
            Decision::Continue
        );
        // Before min_steps, or with too few others, nothing is pruned.
        let mut early = median.clone();
        early.spec.min_steps = 90;
        assert_eq!(
            early.decide(&state, &state.trials[2], 60),
            Decision::Continue
        );
        state.trials.truncate(1);
        state
            .trials
            .push(trial(2, &[(30, 2.5), (60, 2.4)], running()));
        assert_eq!(
            median.decide(&state, &state.trials[1], 60),
            Decision::Continue
        );
    }
}
