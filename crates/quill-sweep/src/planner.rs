//! Which trial comes next: the grid's next point, the next random or Sobol draw, or TPE's
//! proposal given the study so far. Each point is resolved (see `trial`) and dropped, with its
//! reason, when its config is invalid or a constraint fails; a point already in the study is
//! skipped. The repeats of a point are planned together.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use toml::Value;

use crate::file::{PrunerKind, SamplerKind, SweepFile};
use crate::study::{State, Status};
use crate::tpe::{self, Observation, TpeSettings};
use crate::trial::{Resolver, Trial};

/// Draws tried for one new point before the space counts as used up (random, Sobol, TPE).
const MAX_DRAWS: usize = 2_000;

/// A trial to add to the study.
#[derive(Debug, Clone)]
pub struct PlannedTrial {
    pub trial: Trial,
    /// Each parameter's coordinate, `None` where inactive.
    pub point: Vec<Option<f64>>,
    pub draw: Option<usize>,
}

/// A point the plan left out, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub values: String,
    pub reason: String,
}

#[derive(Debug)]
pub struct Planner<'a> {
    pub resolver: Resolver<'a>,
    /// The grid's valid points in order, each with its repeats.
    grid: Vec<Vec<PlannedTrial>>,
    pub dropped: Vec<Dropped>,
}

fn describe(sweep: &SweepFile, values: &[Option<Value>]) -> String {
    sweep
        .params
        .iter()
        .zip(values)
        .filter_map(|(p, v)| v.as_ref().map(|v| format!("{}={v}", p.key)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl<'a> Planner<'a> {
    /// Fails when the base config is invalid or the constraints leave no point at all.
    pub fn new(sweep: &'a SweepFile, overrides: &[String]) -> Result<Self, String> {
        let resolver = Resolver::new(sweep, overrides)?;
        let mut planner = Self {
            resolver,
            grid: Vec::new(),
            dropped: Vec::new(),
        };
        match sweep.sampler.kind {
            SamplerKind::Grid => planner.expand_grid()?,
            _ => {
                // At least one valid point, or the space is empty after the constraints.
                let found = (0..MAX_DRAWS).any(|d| planner.quasi_random(d).is_ok());
                if !found {
                    let reason = planner.quasi_random(0).err().unwrap_or_default();
                    return Err(format!(
                        "no valid point in {MAX_DRAWS} draws of the space (the first was dropped: {reason})"
                    ));
                }
            }
        }
        Ok(planner)
    }

    fn sweep(&self) -> &'a SweepFile {
        self.resolver.sweep
    }

    fn expand_grid(&mut self) -> Result<(), String> {
        let sweep = self.sweep();
        let mut combos: Vec<Vec<Option<Value>>> = vec![Vec::new()];
        for (i, param) in sweep.params.iter().enumerate() {
            let values = param
                .grid_values()
                .expect("grids take lists and int ranges");
            let mut next = Vec::new();
            for combo in combos {
                if self.resolver.is_active(i, &combo)? {
                    for v in &values {
                        let mut c = combo.clone();
                        c.push(Some(v.clone()));
                        next.push(c);
                    }
                } else {
                    let mut c = combo;
                    c.push(None);
                    next.push(c);
                }
            }
            combos = next;
        }
        for combo in combos {
            match self.repeats(&combo, None) {
                Ok(trials) => self.grid.push(trials),
                Err(reason) => self.dropped.push(Dropped {
                    values: describe(sweep, &combo),
                    reason,
                }),
            }
        }
        // With a pruner, a grid runs in a shuffled order (seeded): a rung compares each
        // trial with those that reached it before, and the file's order (often from the worst
        // learning rate to the best) would let every later, better trial through.
        if sweep.pruner.kind != PrunerKind::None {
            use rand::seq::SliceRandom;
            let mut rng = StdRng::seed_from_u64(sweep.sampler.seed);
            self.grid.shuffle(&mut rng);
        }
        if self.grid.is_empty() {
            let first = self.dropped.first().map_or(String::new(), |d| {
                format!(" (e.g. {}: {})", d.values, d.reason)
            });
            return Err(format!(
                "every one of the grid's {} points is dropped{first}",
                self.dropped.len()
            ));
        }
        Ok(())
    }

    /// The point's trials, one per repeat.
    fn repeats(
        &self,
        values: &[Option<Value>],
        draw: Option<usize>,
    ) -> Result<Vec<PlannedTrial>, String> {
        let sweep = self.sweep();
        let point: Vec<Option<f64>> = sweep
            .params
            .iter()
            .zip(values)
            .map(|(p, v)| v.as_ref().and_then(|v| p.to_internal(v)))
            .collect();
        (0..sweep.repeats)
            .map(|r| {
                Ok(PlannedTrial {
                    trial: self.resolver.resolve(values, r)?,
                    point: point.clone(),
                    draw,
                })
            })
            .collect()
    }

    /// The values at unit coordinates `unit(i)` for each parameter, `when`s applied.
    fn values_at(&self, unit: &dyn Fn(usize) -> f64) -> Result<Vec<Option<Value>>, String> {
        let mut values = Vec::new();
        for (i, param) in self.sweep().params.iter().enumerate() {
            let active = self.resolver.is_active(i, &values)?;
            values.push(active.then(|| param.from_unit(unit(i))));
        }
        Ok(values)
    }

    /// Draw `d` of the random or Sobol sequence (TPE's start-up points are Sobol's).
    fn quasi_random(&self, d: usize) -> Result<Vec<PlannedTrial>, String> {
        let sampler = &self.sweep().sampler;
        let values = match sampler.kind {
            SamplerKind::Random => {
                let mut rng = StdRng::seed_from_u64(
                    sampler.seed ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let draws: Vec<f64> = (0..self.sweep().params.len())
                    .map(|_| rng.random())
                    .collect();
                self.values_at(&|i| draws[i])?
            }
            _ => {
                let seed = sampler.seed as u32;
                self.values_at(&|i| {
                    f64::from(sobol_burley::sample(
                        d as u32,
                        i as u32 % 256,
                        seed.wrapping_add(i as u32 / 256),
                    ))
                })?
            }
        };
        self.repeats(&values, Some(d))
    }

    /// The next point's trials, or `None` when the space has no new point.
    pub fn next(&self, state: &State) -> Result<Option<Vec<PlannedTrial>>, String> {
        let known =
            |trials: &[PlannedTrial]| trials.iter().any(|p| state.trial(&p.trial.id).is_some());
        let sweep = self.sweep();
        let points = state
            .trials
            .iter()
            .map(|t| t.group.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let tpe_turn = sweep.sampler.kind == SamplerKind::Tpe && points >= sweep.sampler.n_startup;
        match sweep.sampler.kind {
            SamplerKind::Grid => Ok(self.grid.iter().find(|t| !known(t)).cloned()),
            _ if tpe_turn => {
                for attempt in 0..100 {
                    if let Ok(trials) = self.tpe(state, attempt)
                        && !known(&trials)
                    {
                        return Ok(Some(trials));
                    }
                }
                self.next_draw(state, &known)
            }
            _ => self.next_draw(state, &known),
        }
    }

    fn next_draw(
        &self,
        state: &State,
        known: &dyn Fn(&[PlannedTrial]) -> bool,
    ) -> Result<Option<Vec<PlannedTrial>>, String> {
        let first = state
            .trials
            .iter()
            .filter_map(|t| t.draw)
            .max()
            .map_or(0, |d| d + 1);
        for d in first..first + MAX_DRAWS {
            if let Ok(trials) = self.quasi_random(d)
                && !known(&trials)
            {
                return Ok(Some(trials));
            }
        }
        Ok(None)
    }

    fn tpe(&self, state: &State, attempt: usize) -> Result<Vec<PlannedTrial>, String> {
        let sweep = self.sweep();
        let space: Vec<tpe::Dist> = sweep.params.iter().map(|p| p.dist()).collect();
        let observations: Vec<Observation> = state
            .trials
            .iter()
            .filter(|t| !matches!(t.status, Status::Failed(_)))
            .map(|t| Observation {
                params: t.point.clone(),
                value: match t.status {
                    Status::Finished { .. } | Status::Pruned { .. } => t.best(),
                    _ => None,
                },
            })
            .collect();
        let settings = TpeSettings {
            n_startup: sweep.sampler.n_startup.min(observations.len()),
            ..TpeSettings::default()
        };
        let mut rng = StdRng::seed_from_u64(
            sweep.sampler.seed
                ^ ((state.trials.len() * 1000 + attempt) as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let active = |i: usize, chosen: &[Option<f64>]| {
            let values: Vec<Option<Value>> = sweep.params[..i]
                .iter()
                .zip(chosen)
                .map(|(p, x)| x.map(|x| p.from_internal(x)))
                .collect();
            self.resolver.is_active(i, &values).unwrap_or(false)
        };
        let point = tpe::suggest(&space, &observations, &settings, &mut rng, &active);
        let values: Vec<Option<Value>> = sweep
            .params
            .iter()
            .zip(&point)
            .map(|(p, x)| x.map(|x| p.from_internal(x)))
            .collect();
        self.repeats(&values, None)
    }

    /// The trials a dry run lists: the grid, or the first `max_trials` draws (TPE's after its
    /// start-up points depend on results and are not known before).
    pub fn preview(&self) -> Result<Vec<Trial>, String> {
        let sweep = self.sweep();
        let limit = sweep.budget.max_trials.unwrap_or(usize::MAX);
        if sweep.sampler.kind == SamplerKind::Grid {
            return Ok(self
                .grid
                .iter()
                .flatten()
                .map(|p| p.trial.clone())
                .take(limit)
                .collect());
        }
        let fixed = match sweep.sampler.kind {
            SamplerKind::Tpe => sweep.sampler.n_startup * sweep.repeats,
            _ => limit,
        };
        let mut trials: Vec<Trial> = Vec::new();
        let mut d = 0;
        while trials.len() < fixed.min(limit) && d < MAX_DRAWS * 4 {
            match self.quasi_random(d) {
                Ok(next)
                    if !next
                        .iter()
                        .any(|n| trials.iter().any(|t| t.id == n.trial.id)) =>
                {
                    trials.extend(next.into_iter().map(|p| p.trial));
                }
                _ => {}
            }
            d += 1;
        }
        trials.truncate(limit);
        Ok(trials)
    }
}
