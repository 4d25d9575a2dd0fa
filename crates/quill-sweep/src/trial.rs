//! From a point of the space to a trial: the values applied over the base config (after
//! `[set]` and the command line's `--set`), the `[derive]`d keys, the seed of a repeat, the
//! same validation as `train`, then the constraints. A trial's id is a hash of the config it
//! resolves to, so a changed base or `[set]` makes new trials instead of reusing old results.

use sha2::{Digest, Sha256};
use toml::{Table, Value};

use quill_train::RunConfig;

use crate::expr::{self, Expr};
use crate::file::SweepFile;
use crate::space::literal;

/// One trial, ready to train.
#[derive(Debug, Clone)]
pub struct Trial {
    /// A hash of the resolved config (16 hex digits).
    pub id: String,
    /// Its directory name: the values, then the id's first 8 digits.
    pub name: String,
    /// The point's name without the seed: the repeats of a point share it.
    pub group: String,
    /// `(key, TOML literal)` of each active parameter.
    pub values: Vec<(String, String)>,
    pub config: RunConfig,
}

/// Resolves points against one sweep file and its command-line overrides.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub sweep: &'a SweepFile,
    overrides: Vec<String>,
    /// The base file's text, read once; `origin` names it in errors.
    text: String,
    origin: String,
    base: Table,
}

/// A config value as the expressions see it.
fn expr_value(value: &Value) -> Option<expr::Value> {
    match value {
        Value::Integer(i) => Some(expr::Value::Int(*i)),
        Value::Float(f) => Some(expr::Value::Float(*f)),
        Value::Boolean(b) => Some(expr::Value::Bool(*b)),
        Value::String(s) => Some(expr::Value::Str(s.clone())),
        _ => None,
    }
}

fn lookup(table: &Table, dotted: &str) -> Option<Value> {
    let (section, key) = dotted.split_once('.')?;
    table.get(section)?.as_table()?.get(key).cloned()
}

fn as_table(config: &RunConfig) -> Table {
    Table::try_from(config).expect("the config serializes")
}

impl<'a> Resolver<'a> {
    /// The base config need not be valid alone (a sweep may give a key it lacks, as
    /// `data.vocab_size` for a BPE tokenizer): `when` then reads the base file's own values.
    /// Fails when the base file cannot be read at all.
    pub fn new(sweep: &'a SweepFile, overrides: &[String]) -> Result<Self, String> {
        let overrides: Vec<String> = sweep.set.iter().chain(overrides).cloned().collect();
        let origin = sweep.base.display().to_string();
        let text = std::fs::read_to_string(&sweep.base)
            .map_err(|e| format!("{origin}: cannot read config: {e}"))?;
        let base = match RunConfig::parse_unvalidated(&text, &origin, &overrides) {
            Ok(config) => as_table(&config),
            Err(error) => text.parse::<Table>().map_err(|_| error.to_string())?,
        };
        Ok(Self {
            sweep,
            overrides,
            text,
            origin,
            base,
        })
    }

    /// Whether parameter `index` is swept, given the values chosen for the parameters before it
    /// (`None` where inactive): its `when`, read against those and the base config.
    pub fn is_active(&self, index: usize, chosen: &[Option<Value>]) -> Result<bool, String> {
        let param = &self.sweep.params[index];
        let Some(when) = &param.when else {
            return Ok(true);
        };
        let get = |key: &str| {
            let earlier = self.sweep.params[..index]
                .iter()
                .zip(chosen)
                .find(|(p, _)| p.key == key)
                .and_then(|(_, v)| v.clone());
            earlier
                .or_else(|| lookup(&self.base, key))
                .as_ref()
                .and_then(expr_value)
        };
        match when.eval(&get) {
            Ok(expr::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "`{}`: when `{when}` gives {}, not true or false",
                param.key,
                other.literal()
            )),
            Err(e) => Err(format!("`{}`: when: {e}", param.key)),
        }
    }

    /// The trial of `values` (one per parameter, `None` where inactive), repeat `repeat` (0 =
    /// the base seed); `Err` is why the point is dropped.
    pub fn resolve(&self, values: &[Option<Value>], repeat: usize) -> Result<Trial, String> {
        let active: Vec<(String, String)> = self
            .sweep
            .params
            .iter()
            .zip(values)
            .filter_map(|(p, v)| v.as_ref().map(|v| (p.key.clone(), literal(v))))
            .collect();
        let mut overrides: Vec<String> = self
            .overrides
            .iter()
            .cloned()
            .chain(active.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        let unvalidated = |overrides: &[String]| {
            RunConfig::parse_unvalidated(&self.text, &self.origin, overrides).map_err(|e| e.message)
        };
        if !self.sweep.derive.is_empty() {
            let table = as_table(&unvalidated(&overrides)?);
            for (key, expression) in &self.sweep.derive {
                let value =
                    evaluate(expression, &table).map_err(|e| format!("[derive] `{key}`: {e}"))?;
                overrides.push(format!("{key}={}", value.literal()));
            }
        }
        let mut seed = None;
        if repeat > 0 {
            let base_seed = unvalidated(&overrides)?.train.seed;
            seed = Some(base_seed + repeat as u64);
            overrides.push(format!("train.seed={}", base_seed + repeat as u64));
        }
        let config =
            RunConfig::parse(&self.text, &self.origin, &overrides).map_err(|e| e.message)?;
        let table = as_table(&config);
        for constraint in &self.sweep.constraints {
            match evaluate(constraint, &table)? {
                expr::Value::Bool(true) => {}
                expr::Value::Bool(false) => {
                    let at: Vec<String> = constraint
                        .keys()
                        .iter()
                        .map(|k| {
                            let v = lookup(&table, k).map_or("?".into(), |v| literal(&v));
                            format!("{k}={v}")
                        })
                        .collect();
                    return Err(format!(
                        "constraint `{constraint}` fails ({})",
                        at.join(", ")
                    ));
                }
                other => {
                    return Err(format!(
                        "constraint `{constraint}` gives {}, not true or false",
                        other.literal()
                    ));
                }
            }
        }
        let id = hash(&config.to_toml());
        let group = readable(&active);
        let group = match group.is_empty() {
            true => "base".to_owned(),
            false => group,
        };
        let named = match seed {
            Some(seed) => format!("{group}_seed={seed}"),
            None => group.clone(),
        };
        Ok(Trial {
            name: format!("{named}-{}", &id[..8]),
            id,
            group,
            values: active,
            config,
        })
    }
}

fn evaluate(expression: &Expr, table: &Table) -> Result<expr::Value, String> {
    expression.eval(&|key: &str| lookup(table, key).as_ref().and_then(expr_value))
}

/// 16 hex digits of SHA-256.
pub fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `lr=0.001_dropout=0.1`: the last part of each key (the whole key where two would clash),
/// each value kept to characters every file system takes.
fn readable(values: &[(String, String)]) -> String {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_owned();
    let name: Vec<String> = values
        .iter()
        .map(|(k, v)| {
            let clashes = values.iter().filter(|(o, _)| last(o) == last(k)).count() > 1;
            let key = if clashes { k.clone() } else { last(k) };
            format!("{key}={}", sanitize(v))
        })
        .collect();
    let mut name = name.join("_");
    // Room for the id on file systems with 255-byte names.
    name.truncate(200);
    name
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

    fn sweep(dir: &tempfile::TempDir, body: &str) -> SweepFile {
        std::fs::write(
            dir.path().join("base.toml"),
            "[model]\nn_embd = 64\nn_head = 4\n",
        )
        .unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            format!("base = {:?}\n{body}", dir.path().join("base.toml")),
        )
        .unwrap();
        SweepFile::load(&path).unwrap()
    }

    fn value(text: &str) -> Option<Value> {
        let t: Table = toml::from_str(&format!("v = {text}")).unwrap();
        t.get("v").cloned()
    }

    #[test]
    fn values_derive_and_constraints_make_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let s = sweep(
            &dir,
            "constraints = [\"model.n_embd / model.n_head >= 16\"]\n[space]\n\"optimizer.lr\" = [1e-3]\n\"model.n_head\" = [4, 8]\n[derive]\n\"schedule.min_lr\" = \"optimizer.lr / 10\"\n",
        );
        let r = Resolver::new(&s, &[]).unwrap();
        let t = r.resolve(&[value("1e-3"), value("4")], 0).unwrap();
        assert_eq!(t.config.model.n_head, 4);
        assert!((t.config.schedule.min_lr - 1e-4).abs() < 1e-12);
        assert!(t.name.starts_with("lr=0.001_n_head=4-"), "{}", t.name);
        assert_eq!(t.id.len(), 16);
        let dropped = r.resolve(&[value("1e-3"), value("8")], 0).unwrap_err();
        assert_eq!(
            dropped,
            "constraint `model.n_embd / model.n_head >= 16` fails (model.n_embd=64, model.n_head=8)"
        );
        let repeat = r.resolve(&[value("1e-3"), value("4")], 1).unwrap();
        assert_ne!(repeat.id, t.id);
        assert_eq!(repeat.group, t.group);
        assert_eq!(repeat.config.train.seed, t.config.train.seed + 1);
        // A different --set is a different trial.
        let other = Resolver::new(&s, &["train.seed=40".into()]).unwrap();
        assert_ne!(
            other.resolve(&[value("1e-3"), value("4")], 0).unwrap().id,
            t.id
        );
    }

    #[test]
    fn an_invalid_config_is_dropped_with_the_validation_message() {
        let dir = tempfile::tempdir().unwrap();
        let s = sweep(&dir, "[space]\n\"model.dropout\" = [0.1, 1.5]\n");
        let r = Resolver::new(&s, &[]).unwrap();
        assert!(r.resolve(&[value("0.1")], 0).is_ok());
        let err = r.resolve(&[value("1.5")], 0).unwrap_err();
        assert!(err.contains("dropout"), "{err}");
    }

    #[test]
    fn when_reads_earlier_values_and_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let s = sweep(
            &dir,
            "[space]\n\"model.n_head\" = [2, 4]\n\"model.dropout\" = { choice = [0.0, 0.1], when = 'model.n_head == 4 && model.n_embd == 64' }\n",
        );
        let r = Resolver::new(&s, &[]).unwrap();
        assert!(!r.is_active(1, &[value("2")]).unwrap());
        assert!(r.is_active(1, &[value("4")]).unwrap());
    }
}
