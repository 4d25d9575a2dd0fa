//! Reading a sweep file and expanding it into runs.
//!
//! ```toml
//! base = "configs/cpu-small.toml"      # relative to the repository root
//! mode = "grid"                        # or "random", with `samples` and `seed`
//! [set]                                # applied to every run
//! "train.max_steps" = 500
//! [sweep]
//! "optimizer.lr" = [1e-3, 3e-4]
//! "model.dropout" = [0.0, 0.1]         # random mode also takes { log_uniform = [a, b] }
//! ```                                  # and { uniform = [a, b] }

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use toml::{Table, Value};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SweepError {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Axis {
    List(Vec<Value>),
    Uniform(f64, f64),
    LogUniform(f64, f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Grid,
    Random { samples: usize, seed: u64 },
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct SweepFile {
    pub path: PathBuf,
    /// The base config, resolved to a path that exists.
    pub base: PathBuf,
    /// `section.key=value` settings for every run, from the `[set]` table.
    pub set: Vec<String>,
    keys: Vec<String>,
    axes: Vec<Axis>,
    mode: Mode,
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Directory name, made from the values (`lr=0.001_dropout=0.1`).
    pub name: String,
    /// `(key, value as a TOML literal)` for each swept key.
    pub values: Vec<(String, String)>,
}

impl PlannedRun {
    /// The values as `--set` assignments.
    pub fn overrides(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

impl SweepFile {
    pub fn load(path: &Path) -> Result<Self, SweepError> {
        let fail = |message: String| SweepError {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut table: Table = toml::from_str(&text).map_err(|e| {
            fail(format!(
                "invalid TOML: {}",
                e.message().trim().replace('\n', " ")
            ))
        })?;

        let base = match table.remove("base") {
            Some(Value::String(base)) => resolve_base(path, Path::new(&base)).ok_or_else(|| {
                fail(format!(
                    "base config `{base}` not found (it is relative to the repository root)"
                ))
            })?,
            Some(other) => return Err(fail(format!("`base` must be a string, got {other}"))),
            None => return Err(fail("missing `base = \"configs/....toml\"`".into())),
        };
        let mode = match table.remove("mode").as_ref().map(Value::as_str) {
            None | Some(Some("grid")) => Mode::Grid,
            Some(Some("random")) => {
                let samples = match table.remove("samples") {
                    Some(Value::Integer(n)) if n > 0 => n as usize,
                    other => {
                        return Err(fail(format!(
                            "random mode needs `samples` = a positive integer, got {other:?}"
                        )));
                    }
                };
                let seed = match table.remove("seed") {
                    None => 0,
                    Some(Value::Integer(n)) if n >= 0 => n as u64,
                    Some(other) => {
                        return Err(fail(format!(
                            "`seed` must be a non-negative integer, got {other}"
                        )));
                    }
                };
                Mode::Random { samples, seed }
            }
            Some(other) => {
                return Err(fail(format!(
                    "`mode` must be \"grid\" or \"random\", got {other:?}"
                )));
            }
        };
        let set = match table.remove("set") {
            None => Vec::new(),
            Some(Value::Table(set)) => flatten(set, "")
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            Some(other) => return Err(fail(format!("`[set]` must be a table, got {other}"))),
        };
        let Some(Value::Table(sweep)) = table.remove("sweep") else {
            return Err(fail("missing the `[sweep]` table of keys to values".into()));
        };
        let sweep = flatten(sweep, "");
        if let Some(unknown) = table.keys().next() {
            return Err(fail(format!(
                "unknown key `{unknown}` (a sweep file has base, mode, samples, seed, [set] and [sweep])"
            )));
        }
        let mut keys = Vec::new();
        let mut axes = Vec::new();
        for (key, value) in sweep {
            let axis = parse_axis(&key, value).map_err(&fail)?;
            if matches!(axis, Axis::Uniform(..) | Axis::LogUniform(..)) && mode == Mode::Grid {
                return Err(fail(format!(
                    "`{key}`: ranges need mode = \"random\"; a grid takes lists"
                )));
            }
            keys.push(key);
            axes.push(axis);
        }
        if keys.is_empty() {
            return Err(fail("the `[sweep]` table is empty".into()));
        }
        Ok(Self {
            path: path.to_owned(),
            base,
            set,
            keys,
            axes,
            mode,
        })
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The runs: every combination of the lists (grid), or `samples` draws (random).
    pub fn runs(&self) -> Vec<PlannedRun> {
        let combos: Vec<Vec<Value>> = match &self.mode {
            Mode::Grid => self.axes.iter().fold(vec![Vec::new()], |combos, axis| {
                let Axis::List(values) = axis else {
                    unreachable!("grids take lists only");
                };
                combos
                    .iter()
                    .flat_map(|combo| {
                        values.iter().map(move |v| {
                            let mut next = combo.clone();
                            next.push(v.clone());
                            next
                        })
                    })
                    .collect()
            }),
            Mode::Random { samples, seed } => {
                let mut rng = StdRng::seed_from_u64(*seed);
                (0..*samples)
                    .map(|_| self.axes.iter().map(|axis| draw(axis, &mut rng)).collect())
                    .collect()
            }
        };
        let short = short_names(&self.keys);
        let mut runs: Vec<PlannedRun> = combos
            .into_iter()
            .map(|combo| {
                let values: Vec<(String, String)> = self
                    .keys
                    .iter()
                    .cloned()
                    .zip(combo.iter().map(literal))
                    .collect();
                let name = short
                    .iter()
                    .zip(&combo)
                    .map(|(k, v)| format!("{k}={}", sanitize(&literal(v))))
                    .collect::<Vec<_>>()
                    .join("_");
                PlannedRun { name, values }
            })
            .collect();
        // Random draws can repeat a list value combination: keep names unique.
        for i in 0..runs.len() {
            let repeats = runs[..i]
                .iter()
                .filter(|r| r.values == runs[i].values)
                .count();
            if repeats > 0 {
                runs[i].name = format!("{}_{}", runs[i].name, repeats + 1);
            }
        }
        runs
    }
}

/// Dotted keys for nested tables (`optimizer.lr = 1` parses as `{optimizer = {lr = 1}}`),
/// leaving range specs such as `{ log_uniform = [a, b] }` whole.
fn flatten(table: Table, prefix: &str) -> Vec<(String, Value)> {
    let is_range =
        |t: &Table| t.len() == 1 && t.keys().all(|k| k == "uniform" || k == "log_uniform");
    table
        .into_iter()
        .flat_map(|(key, value)| {
            let key = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Table(t) if !is_range(&t) => flatten(t, &key),
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

fn parse_axis(key: &str, value: Value) -> Result<Axis, String> {
    let range = |v: &Value| -> Option<(f64, f64)> {
        let pair = v.as_array()?;
        let num = |x: &Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
        match pair.as_slice() {
            [a, b] => Some((num(a)?, num(b)?)),
            _ => None,
        }
    };
    match value {
        Value::Array(values) if !values.is_empty() => Ok(Axis::List(values)),
        Value::Array(_) => Err(format!("`{key}`: the list of values is empty")),
        Value::Table(t) if t.len() == 1 => {
            let (kind, bounds) = t.iter().next().expect("one entry");
            let (lo, hi) =
                range(bounds).ok_or_else(|| format!("`{key}`: {kind} needs [low, high]"))?;
            match kind.as_str() {
                "uniform" if lo < hi => Ok(Axis::Uniform(lo, hi)),
                "log_uniform" if 0.0 < lo && lo < hi => Ok(Axis::LogUniform(lo, hi)),
                "uniform" | "log_uniform" => Err(format!("`{key}`: bad {kind} range [{lo}, {hi}]")),
                other => Err(format!(
                    "`{key}`: unknown range `{other}` (use uniform or log_uniform)"
                )),
            }
        }
        other => Err(format!(
            "`{key}` must be a list of values or {{ log_uniform = [a, b] }}, got {other}"
        )),
    }
}

fn draw(axis: &Axis, rng: &mut StdRng) -> Value {
    // Three significant digits keep drawn values (and run names) readable.
    let round = |x: f64| {
        let digits = 2 - x.abs().log10().floor() as i32;
        let scale = 10f64.powi(digits);
        (x * scale).round() / scale
    };
    match axis {
        Axis::List(values) => values[rng.random_range(0..values.len())].clone(),
        Axis::Uniform(lo, hi) => Value::Float(round(rng.random_range(*lo..*hi))),
        Axis::LogUniform(lo, hi) => Value::Float(round(rng.random_range(lo.ln()..hi.ln()).exp())),
    }
}

/// A value as TOML would write it (`0.001`, `true`, `"learned"`).
fn literal(value: &Value) -> String {
    value.to_string()
}

/// The last part of each key (`lr` for `optimizer.lr`), or the whole key where two would clash.
fn short_names(keys: &[String]) -> Vec<String> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_owned();
    keys.iter()
        .map(|k| {
            let clashes = keys.iter().filter(|o| last(o) == last(k)).count() > 1;
            if clashes { k.clone() } else { last(k) }
        })
        .collect()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(dir: &tempfile::TempDir, body: &str) -> Result<SweepFile, String> {
        std::fs::create_dir_all(dir.path().join("configs/sweeps")).unwrap();
        std::fs::write(dir.path().join("configs/base.toml"), "").unwrap();
        let path = dir.path().join("configs/sweeps/s.toml");
        std::fs::write(&path, format!("base = \"configs/base.toml\"\n{body}")).unwrap();
        SweepFile::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn grid_expands_every_combination_with_readable_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = sweep(
            &dir,
            "[set]\ntrain.max_steps = 10\n[sweep]\n\"optimizer.lr\" = [1e-3, 3e-4]\nmodel.positional = [\"learned\", \"sinusoidal\"]\n",
        )
        .unwrap();
        assert!(s.base.ends_with("configs/base.toml"));
        assert_eq!(s.set, ["train.max_steps=10"]);
        let runs = s.runs();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lr=0.001_positional=learned",
                "lr=0.001_positional=sinusoidal",
                "lr=0.0003_positional=learned",
                "lr=0.0003_positional=sinusoidal"
            ]
        );
        assert_eq!(
            runs[1].overrides(),
            ["optimizer.lr=0.001", "model.positional=\"sinusoidal\""]
        );
    }

    #[test]
    fn random_draws_are_seeded_and_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let body = "mode = \"random\"\nsamples = 6\nseed = 4\n[sweep]\n\"optimizer.lr\" = { log_uniform = [1e-4, 3e-3] }\n\"model.dropout\" = [0.0, 0.1]\n";
        let a = sweep(&dir, body).unwrap().runs();
        assert_eq!(a, sweep(&dir, body).unwrap().runs());
        assert_eq!(a.len(), 6);
        for run in &a {
            let lr: f64 = run.values[0].1.parse().unwrap();
            assert!((1e-4..=3e-3).contains(&lr), "{lr}");
            assert!(["0.0", "0.1"].contains(&run.values[1].1.as_str()));
        }
        let names: std::collections::HashSet<_> = a.iter().map(|r| &r.name).collect();
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn bad_sweep_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (body, expected) in [
            ("[sweep]\n", "the `[sweep]` table is empty"),
            ("", "missing the `[sweep]` table"),
            (
                "[sweep]\n\"optimizer.lr\" = { log_uniform = [1e-4, 3e-3] }\n",
                "ranges need mode = \"random\"",
            ),
            (
                "mode = \"random\"\n[sweep]\n\"optimizer.lr\" = [1]\n",
                "needs `samples`",
            ),
            (
                "[sweep]\n\"optimizer.lr\" = []\n",
                "the list of values is empty",
            ),
            (
                "colour = 1\n[sweep]\n\"optimizer.lr\" = [1]\n",
                "unknown key `colour`",
            ),
        ] {
            let err = sweep(&dir, body).unwrap_err();
            assert!(err.contains(expected), "{expected:?} in {err:?}");
        }
        std::fs::write(
            dir.path().join("missing-base.toml"),
            "base = \"nope.toml\"\n[sweep]\n\"a.b\" = [1]\n",
        )
        .unwrap();
        let err = SweepFile::load(&dir.path().join("missing-base.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("base config `nope.toml` not found"), "{err}");
    }
}
