//! Reading a sweep file: the base config, what every trial sets, the search space and how it
//! is searched, pruned, run and budgeted. Every mistake is refused here, before anything
//! trains, as one line naming the file, the key and the value.
//!
//! ```toml
//! base = "configs/cpu-small.toml"      # relative to the repository root
//! [set]                                # applied to every trial
//! "train.max_steps" = 270
//! [space]                              # see `space`; [sweep] lists are a grid's axes
//! "optimizer.lr" = { log_uniform = [1e-4, 3e-3] }
//! constraints = ["model.n_embd % model.n_head == 0"]   # (top level, before the tables)
//! [derive]
//! "schedule.min_lr" = "optimizer.lr / 10"
//! sampler = { kind = "tpe", seed = 0, n_startup = 8 }  # grid | random | sobol | tpe
//! pruner = { kind = "asha", eta = 3, min_steps = 30 }  # none | median | asha | hyperband
//! resources = { workers = 2, threads = 1 }             # or { devices = "0,1", per_device = 1 }
//! budget = { max_trials = 27, max_wall = "20m", max_total_steps = 5000, target = 1.5 }
//! repeats = 1
//! ```
//!
//! Files of the first sweeps (`mode = "grid" | "random"`, `samples`, `seed`, `[sweep]`) read
//! as before: `mode = "random"` is the random sampler with `max_trials = samples`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quill_train::RunConfig;
use quill_train::config::unknown_key;
use toml::{Table, Value};

use crate::expr::Expr;
use crate::space::{Param, is_spec};
use sections::{parse_budget, parse_pruner, parse_resources, parse_sampler};
pub use sections::{parse_devices, parse_duration};

mod sections;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SweepError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    Grid,
    Random,
    Sobol,
    Tpe,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    pub kind: SamplerKind,
    pub seed: u64,
    /// TPE: quasi-random (Sobol) trials before the model-based ones.
    pub n_startup: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrunerKind {
    None,
    Median,
    Asha,
    Hyperband,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrunerSpec {
    pub kind: PrunerKind,
    /// ASHA and Hyperband: a rung keeps the best 1/eta of the trials that reach it.
    pub eta: usize,
    /// The first step at which a trial may be stopped (ASHA's first rung); 0 = the first
    /// evaluation.
    pub min_steps: usize,
    /// Median: trials evaluated at a step before it compares against their median.
    pub n_startup: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// Trials at once.
    pub workers: usize,
    /// CPU threads per trial (`RAYON_NUM_THREADS`); default: the cores shared out.
    pub threads: Option<usize>,
    /// GPUs: the devices trials run on, `per_device` at a time on each.
    pub devices: Option<Vec<usize>>,
    pub per_device: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    pub max_trials: Option<usize>,
    pub max_wall: Option<Duration>,
    pub max_total_steps: Option<usize>,
    /// Stop once a trial's best validation loss is at or below this.
    pub target: Option<f64>,
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct SweepFile {
    pub path: PathBuf,
    /// The base config, resolved to a path that exists.
    pub base: PathBuf,
    /// `section.key=value` settings for every trial, from the `[set]` table.
    pub set: Vec<String>,
    pub params: Vec<Param>,
    pub constraints: Vec<Expr>,
    pub derive: Vec<(String, Expr)>,
    pub sampler: Sampler,
    pub pruner: PrunerSpec,
    pub resources: Resources,
    pub budget: Budget,
    /// Seeds per point.
    pub repeats: usize,
}

const TOP_KEYS: [&str; 13] = [
    "base",
    "mode",
    "samples",
    "seed",
    "set",
    "sweep",
    "space",
    "constraints",
    "derive",
    "sampler",
    "pruner",
    "resources",
    "budget",
];

impl SweepFile {
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let fail = |message: String| SweepError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let table: Table = toml::from_str(&text).map_err(|e| {
            fail(format!(
                "invalid TOML: {}",
                e.message().trim().replace('\n', " ")
            ))
        })?;
        Self::from_table(path, table).map_err(fail)
    }

    fn from_table(path: &Path, mut table: Table) -> Result<Self, String> {
        let known: Vec<&str> = TOP_KEYS.iter().copied().chain(["repeats"]).collect();
        if let Some(unknown) = table.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(unknown_key(unknown, known.iter().copied()));
        }
        let base = match table.remove("base") {
            Some(Value::String(base)) => resolve_base(path, Path::new(&base)).ok_or_else(|| {
                format!("base config `{base}` not found (it is relative to the repository root)")
            })?,
            Some(other) => return Err(format!("`base` must be a string, got {other}")),
            None => return Err("missing `base = \"configs/....toml\"`".into()),
        };
        let set = match table.remove("set") {
            None => Vec::new(),
            Some(Value::Table(set)) => {
                let set = flatten(set, "");
                for (key, _) in &set {
                    RunConfig::check_key(key).map_err(|e| format!("[set]: {e}"))?;
                }
                set.iter().map(|(k, v)| format!("{k}={v}")).collect()
            }
            Some(other) => return Err(format!("`[set]` must be a table, got {other}")),
        };

        let mode = table.remove("mode");
        let samples = table.remove("samples");
        let legacy_seed = table.remove("seed");
        let mut budget = parse_budget(table.remove("budget"))?;
        let mode_text = mode.as_ref().map(|m| m.to_string());
        let sampler = match (mode.as_ref().map(|m| m.as_str()), table.remove("sampler")) {
            (Some(_), Some(_)) => {
                return Err("`mode` and `sampler` both given; use `sampler` alone".into());
            }
            (None | Some(Some("grid")), None) => Sampler {
                kind: SamplerKind::Grid,
                seed: 0,
                n_startup: 0,
            },
            (Some(Some("random")), None) => {
                let samples = match samples {
                    Some(Value::Integer(n)) if n > 0 => n as usize,
                    other => {
                        return Err(format!(
                            "random mode needs `samples` = a positive integer, got {}",
                            other.map_or("nothing".into(), |v| v.to_string())
                        ));
                    }
                };
                budget.max_trials.get_or_insert(samples);
                Sampler {
                    kind: SamplerKind::Random,
                    seed: match legacy_seed {
                        None => 0,
                        Some(Value::Integer(n)) if n >= 0 => n as u64,
                        Some(other) => {
                            return Err(format!(
                                "`seed` must be a non-negative integer, got {other}"
                            ));
                        }
                    },
                    n_startup: 0,
                }
            }
            (Some(other), None) => {
                return Err(format!(
                    "`mode` must be \"grid\" or \"random\", got {}",
                    other.map_or_else(|| mode_text.unwrap_or_default(), |s| format!("{s:?}"))
                ));
            }
            (None, Some(spec)) => parse_sampler(spec)?,
        };

        let mut params = Vec::new();
        for section in ["sweep", "space"] {
            match table.remove(section) {
                None => {}
                Some(Value::Table(entries)) => {
                    for (key, value) in flatten(entries, "") {
                        RunConfig::check_key(&key).map_err(|e| format!("[{section}]: {e}"))?;
                        if params.iter().any(|p: &Param| p.key == key) {
                            return Err(format!("`{key}` is swept twice"));
                        }
                        params.push(Param::parse(&key, value)?);
                    }
                }
                Some(other) => return Err(format!("`[{section}]` must be a table, got {other}")),
            }
        }
        if params.is_empty() {
            return Err("missing the `[space]` (or `[sweep]`) table of keys to values".into());
        }
        if sampler.kind == SamplerKind::Grid
            && let Some(p) = params.iter().find(|p| p.grid_values().is_none())
        {
            return Err(format!(
                "`{}`: ranges need another sampler (sampler = {{ kind = \"random\" }}, \"sobol\" or \"tpe\"); a grid takes lists and int ranges",
                p.key
            ));
        }
        if sampler.kind != SamplerKind::Grid && budget.max_trials.is_none() {
            return Err("this sampler draws without end: give budget = { max_trials = N }".into());
        }

        let constraints = match table.remove("constraints") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|c| match c {
                    Value::String(text) => {
                        Expr::parse(text).map_err(|e| format!("constraints: {e}"))
                    }
                    other => Err(format!("constraints: {other} is not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "`constraints` must be a list of strings, got {other}"
                ));
            }
        };
        let derive = match table.remove("derive") {
            None => Vec::new(),
            Some(Value::Table(entries)) => flatten(entries, "")
                .into_iter()
                .map(|(key, value)| {
                    RunConfig::check_key(&key).map_err(|e| format!("[derive]: {e}"))?;
                    match value {
                        Value::String(text) => Expr::parse(&text)
                            .map(|e| (key.clone(), e))
                            .map_err(|e| format!("[derive] `{key}`: {e}")),
                        other => Err(format!(
                            "[derive] `{key}` must be an expression in a string, got {other}"
                        )),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("`[derive]` must be a table, got {other}")),
        };
        let expressions = params
            .iter()
            .filter_map(|p| p.when.as_ref().map(|w| (format!("`{}`: when", p.key), w)))
            .chain(constraints.iter().map(|c| ("constraints".to_string(), c)))
            .chain(derive.iter().map(|(k, e)| (format!("[derive] `{k}`"), e)));
        for (place, expression) in expressions {
            for key in expression.keys() {
                RunConfig::check_key(&key)
                    .map_err(|e| format!("{place}: {e} in `{expression}`"))?;
            }
        }
        let pruner = parse_pruner(table.remove("pruner"))?;
        let resources = parse_resources(table.remove("resources"))?;
        let repeats = match table.remove("repeats") {
            None => 1,
            Some(Value::Integer(n)) if n >= 1 => n as usize,
            Some(other) => return Err(format!("`repeats` must be 1 or more, got {other}")),
        };
        Ok(Self {
            path: path.to_owned(),
            base,
            set,
            params,
            constraints,
            derive,
            sampler,
            pruner,
            resources,
            budget,
            repeats,
        })
    }

    /// The swept keys, in the file's order.
    pub fn keys(&self) -> Vec<String> {
        self.params.iter().map(|p| p.key.clone()).collect()
    }
}

/// Dotted keys for nested tables (`optimizer.lr = 1` parses as `{optimizer = {lr = 1}}`),
/// leaving parameter tables such as `{ log_uniform = [a, b] }` whole.
fn flatten(table: Table, prefix: &str) -> Vec<(String, Value)> {
    table
        .into_iter()
        .flat_map(|(key, value)| {
            let key = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(t) if !is_spec(&t) => flatten(t, &key),
                other => vec![(key, other)],
            }
        })
        .collect()
}

/// `base` as written relative to the repository root: the first ancestor of the sweep file's
/// directory (or the working directory) where it exists.
fn resolve_base(sweep: &Path, base: &Path) -> Option<PathBuf> {
    if base.is_absolute() || base.exists() {
        return base.exists().then(|| base.to_owned());
    }
    let dir = std::path::absolute(sweep).ok()?;
    dir.ancestors()
        .skip(1)
        .map(|a| a.join(base))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests;
