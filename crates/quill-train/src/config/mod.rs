//! The run configuration: one typed tree, read from TOML, overridden with `--set`, validated
//! before any work starts.
//!
//! Every field has a documented default, so a config file only names what it changes. Unknown
//! keys, values of the wrong type and out-of-range values are refused with a one-line error
//! naming the file (or `--set`), the key and the value.

mod overrides;
mod sections;

#[cfg(test)]
mod fuzz;

use std::path::Path;

use quill_data::DataConfig;
use quill_model::ModelConfig;
use serde::{Deserialize, Serialize};
use toml::Table;

pub use overrides::unknown_key;
use overrides::{all_keys, apply_override, check_against_schema, describe_toml_error};
pub use sections::{
    CheckpointConfig, Devices, InitConfig, MuonConfig, OptimizerConfig, OptimizerKind, Precision,
    ScheduleConfig, ScheduleKind, TrainConfig, check_devices,
};

/// One section of the config, as serde reads it; a value it refuses is named by its key (the
/// first key of the section that fails on its own), or by the section when none does.
fn read_section<T: serde::de::DeserializeOwned>(
    section: &str,
    value: toml::Value,
    origin: &str,
) -> Result<T, ConfigError> {
    value.clone().try_into().map_err(|e: toml::de::Error| {
        let alone = |key: &String, entry: &toml::Value| {
            let table = Table::from_iter([(key.clone(), entry.clone())]);
            toml::Value::Table(table).try_into::<T>().is_err()
        };
        let key = match &value {
            toml::Value::Table(entries) => entries.iter().find(|(k, v)| alone(k, v)),
            _ => None,
        };
        let place = match key {
            Some((key, _)) => format!("`{section}.{key}`"),
            None => format!("[{section}]"),
        };
        ConfigError::new(origin, format!("{place}: {}", e.message().trim()))
    })
}

/// Everything that defines a training run; saved resolved as `config.toml` in the run directory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    pub checkpoint: CheckpointConfig,
    pub init: InitConfig,
}

/// A config that cannot be used, with where the problem is.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// The file, or `--set KEY=VALUE`.
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`, in order) and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let config = Self::load_unvalidated(path, overrides)?;
        config
            .validate()
            .map_err(|m| ConfigError::new(path.display().to_string(), m))?;
        Ok(config)
    }

    /// Like [`RunConfig::load`] from text; `origin` names the text in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let config = Self::parse_unvalidated(text, origin, overrides)?;
        config.validate().map_err(|m| ConfigError::new(origin, m))?;
        Ok(config)
    }

    /// Like [`RunConfig::load`] but checks keys and types only, not [`RunConfig::validate`]'s
    /// relations: a sweep reads a config that is incomplete alone (a `[derive]` key still to
    /// come, a `when` key the base lacks) and validates each finished trial.
    pub fn load_unvalidated(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, format!("cannot read config: {e}")))?;
        Self::parse_unvalidated(&text, &origin, overrides)
    }

    /// [`RunConfig::load_unvalidated`] from text; `origin` names the text in errors.
    pub fn parse_unvalidated(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let schema = Table::try_from(Self::default()).expect("the default config serializes");
        let mut table: Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(origin, describe_toml_error(&e, text)))?;
        check_against_schema(&mut table, &schema, origin)?;
        for assignment in overrides {
            apply_override(&mut table, &schema, assignment)?;
        }
        Self::from_table(table, origin)
    }

    fn from_table(table: Table, origin: &str) -> Result<Self, ConfigError> {
        // Section by section, so a value serde refuses (an unknown `positional`, a negative
        // count) is reported with its key even though the message comes from serde.
        let mut config = Self::default();
        for (section, value) in table {
            match section.as_str() {
                "model" => config.model = read_section(&section, value, origin)?,
                "data" => config.data = read_section(&section, value, origin)?,
                "train" => config.train = read_section(&section, value, origin)?,
                "optimizer" => config.optimizer = read_section(&section, value, origin)?,
                "schedule" => config.schedule = read_section(&section, value, origin)?,
                "checkpoint" => config.checkpoint = read_section(&section, value, origin)?,
                "init" => config.init = read_section(&section, value, origin)?,
                _ => unreachable!("sections were checked against the schema"),
            }
        }
        Ok(config)
    }

    /// Every `section.key` a config has (`section.table.key` in nested tables), in the
    /// schema's order.
    pub fn keys() -> Vec<String> {
        all_keys(&Table::try_from(Self::default()).expect("the default config serializes"))
    }

    /// `Ok` when `dotted` (`section.key`) is a key of the config, else the error with the
    /// closest key as a suggestion.
    pub fn check_key(dotted: &str) -> Result<(), String> {
        let keys = Self::keys();
        match keys.iter().any(|k| k == dotted) {
            true => Ok(()),
            false => Err(unknown_key(dotted, keys.iter().map(String::as_str))),
        }
    }

    /// The resolved config as TOML, every field written out.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }

    /// Epochs in the run: one per `eval_interval` optimizer steps.
    pub fn epochs(&self) -> usize {
        self.train.max_steps / self.train.eval_interval
    }

    /// The step where cosine decay ends, resolving `decay_steps = 0`.
    pub fn decay_steps(&self) -> usize {
        if self.schedule.decay_steps == 0 {
            self.train.max_steps
        } else {
            self.schedule.decay_steps
        }
    }

    /// WSD's cool-down length in steps (`schedule.cooldown_fraction` of the decay steps,
    /// rounded); `None` for the cosine schedule.
    pub fn cooldown_steps(&self) -> Option<usize> {
        let fraction = self.schedule.cooldown_fraction;
        (self.schedule.kind == ScheduleKind::Wsd)
            .then(|| (fraction * self.decay_steps() as f64).round() as usize)
    }

    /// Checks the ranges and relations that types cannot express, section by section (each
    /// section's rules live beside its type); the error names the first key that fails.
    pub fn validate(&self) -> Result<(), String> {
        // One rule for every number: TOML writes `inf` and `nan` as floats, and no key of the
        // config has a use for them (`optimizer.lr = inf` would pass "greater than 0").
        let table = Table::try_from(self).expect("the config serializes");
        for (section, keys) in &table {
            for (key, value) in keys.as_table().into_iter().flatten() {
                if let toml::Value::Float(x) = value
                    && !x.is_finite()
                {
                    return Err(format!(
                        "invalid value for `{section}.{key}`: {x} is not a finite number"
                    ));
                }
            }
        }
        self.model.validate()?;
        self.data.validate()?;
        self.train.validate()?;
        self.optimizer.validate()?;
        self.schedule.validate(&self.optimizer)?;
        self.checkpoint.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, overrides: &[&str]) -> Result<RunConfig, String> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        RunConfig::parse(text, "test.toml", &overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn infinite_numbers_are_refused_by_key() {
        for (text, set, key) in [
            ("[optimizer]\nlr = inf\n", &[][..], "optimizer.lr"),
            ("", &["schedule.min_lr=-inf"][..], "schedule.min_lr"),
            ("[model]\ndropout = nan\n", &[][..], "model.dropout"),
            ("", &["optimizer.grad_clip=inf"][..], "optimizer.grad_clip"),
        ] {
            let error = parse(text, set).unwrap_err();
            assert!(
                error.contains(&format!("`{key}`")) && error.contains("not a finite number"),
                "{error}"
            );
        }
    }

    #[test]
    fn missing_fields_take_defaults() {
        let config = parse("[model]\nn_layer = 2\n", &[]).unwrap();
        assert_eq!(config.model.n_layer, 2);
        assert_eq!(config.model.n_head, ModelConfig::default().n_head);
        assert_eq!(config.optimizer, OptimizerConfig::default());
    }

    #[test]
    fn resolved_config_round_trips() {
        let config = parse(
            "[optimizer]\nlr = 3e-4\n[model]\npositional = \"sinusoidal\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(parse(&config.to_toml(), &[]).unwrap(), config);
    }

    #[test]
    fn overrides_apply_with_type_checks() {
        let config = parse(
            "[optimizer]\nlr = 1e-3\n",
            &[
                "optimizer.lr=3e-4",
                "model.positional=sinusoidal",
                "train.batch_size = 8",
                "model.bias=true",
            ],
        )
        .unwrap();
        assert_eq!(config.optimizer.lr, 3e-4);
        assert_eq!(config.model.positional, quill_model::Positional::Sinusoidal);
        assert_eq!(config.train.batch_size, 8);
        assert!(config.model.bias);
        assert_eq!(parse("", &["optimizer.lr=1"]).unwrap().optimizer.lr, 1.0);
    }

    #[test]
    fn errors_name_the_file_key_and_value() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "[model]\nn_layer = \n",
                &[],
                "test.toml: invalid TOML at line 2, column 11",
            ),
            (
                "[optimizer]\nlrr = 1e-3\n",
                &[],
                "test.toml: unknown key `optimizer.lrr` (did you mean `optimizer.lr`?)",
            ),
            (
                "[optimiser]\nlr = 1e-3\n",
                &[],
                "unknown key `optimiser` (did you mean `optimizer`?)",
            ),
            (
                "[model]\nn_layer = \"six\"\n",
                &[],
                "`model.n_layer` must be an integer, got string \"six\"",
            ),
            (
                "[model]\npositional = \"alibi\"\n",
                &[],
                "`model.positional`: unknown variant `alibi`, expected one of `learned`, `sinusoidal`, `rotary`",
            ),
            (
                "[model]\nn_layer = -2\n",
                &[],
                "`model.n_layer`: invalid value: integer `-2`",
            ),
            (
                "[optimizer.muon]\nns_steps = -1\n",
                &[],
                "`optimizer.muon`: invalid value: integer `-1`",
            ),
            (
                "[optimizer]\nlr = 0.0\n",
                &[],
                "invalid value for `optimizer.lr`: 0 must be greater than 0",
            ),
            (
                "[optimizer]\nlr = -1e-3\n",
                &[],
                "invalid value for `optimizer.lr`",
            ),
            (
                "[model]\ndropout = 1.0\n",
                &[],
                "invalid value for `model.dropout`: 1 is outside [0, 1)",
            ),
            (
                "[model]\ndropout = -0.1\n",
                &[],
                "invalid value for `model.dropout`",
            ),
            (
                "[model]\nn_embd = 100\nn_head = 6\n",
                &[],
                "invalid value for `model.n_embd`: 100 is not divisible by model.n_head = 6",
            ),
            (
                "[train]\nbatch_size = 0\n",
                &[],
                "invalid value for `train.batch_size`: must be at least 1",
            ),
            (
                "[train]\nmax_steps = 1000\neval_interval = 300\n",
                &[],
                "invalid value for `train.max_steps`",
            ),
            (
                "",
                &["optimizer.lr=abc"],
                "--set optimizer.lr=abc: `optimizer.lr` must be a float, got string \"abc\"",
            ),
            (
                "",
                &["optimizer.lrate=1"],
                "--set optimizer.lrate=1: unknown key `optimizer.lrate` (did you mean `optimizer.lr`?)",
            ),
            (
                "",
                &["optimizer.lr"],
                "--set optimizer.lr: expected section.key=value",
            ),
            (
                "",
                &["lr=1"],
                "--set lr=1: `lr` is not of the form section.key",
            ),
        ];
        for (text, overrides, expected) in cases {
            let err = parse(text, overrides).expect_err(expected);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
            assert!(!err.contains('\n'), "not one line: {err:?}");
        }
    }
}
