//! The run configuration: one typed tree, read from TOML, overridden with `--set`, validated
//! before any work starts.
//!
//! Every field has a documented default, so a config file only names what it changes. Unknown
//! keys, values of the wrong type and out-of-range values are refused with a one-line error
//! naming the file (or `--set`), the key and the value.

use std::path::Path;

use quill_data::DataConfig;
use quill_model::ModelConfig;

use crate::run_dir::Weights;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

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

/// `[train]`: how long, how big, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps in the whole run; a multiple of `eval_interval`.
    pub max_steps: usize,
    /// Optimizer steps per epoch: the loss on the validation windows is measured, a row of
    /// `metrics.csv` written and a checkpoint saved after each epoch.
    pub eval_interval: usize,
    /// Batches of fixed validation windows averaged for each val loss.
    pub eval_batches: usize,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    pub grad_accum: usize,
    /// Seeds the initial weights, the training windows, dropout and the validation windows.
    pub seed: u64,
    /// Float types of the run: `"f32"`; `"bf16-mixed"` (f32 weights and optimizer, matrix
    /// products in bf16, as nanoGPT trains on GPUs); or `"f16"` / `"bf16"`, every tensor in
    /// that type, where the backend and device support it (CUDA: both; wgpu: f16 on devices
    /// with shader-f16).
    pub precision: Precision,
}

/// The float types a run computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    #[serde(rename = "f32")]
    F32,
    /// f32 weights, optimizer state, layer norm, softmax and loss; bf16 matrix products.
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    /// The device's default float type: that of the weights and the optimizer state.
    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Precision::F32 | Precision::Bf16Mixed => burn::tensor::DType::F32,
            Precision::F16 => burn::tensor::DType::F16,
            Precision::Bf16 => burn::tensor::DType::BF16,
        }
    }

    /// Where the model's matrix products run, relative to the weights.
    pub fn autocast(self) -> quill_model::Autocast {
        match self {
            Precision::Bf16Mixed => quill_model::Autocast::to(burn::tensor::FloatDType::BF16),
            _ => quill_model::Autocast::OFF,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            max_steps: 5000,
            eval_interval: 250,
            eval_batches: 20,
            batch_size: 64,
            grad_accum: 1,
            seed: 1337,
            precision: Precision::F32,
        }
    }
}

/// `[optimizer]`: AdamW with decoupled weight decay on matrices only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Peak learning rate, reached at the end of warmup.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Decoupled weight decay applied to weight matrices (not to biases, norms or positions'
    /// gains); 0 turns it off.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    pub grad_clip: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.1,
            grad_clip: 1.0,
        }
    }
}

/// `[schedule]`: linear warmup from 0 to `optimizer.lr`, then cosine decay to `min_lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Steps of linear warmup.
    pub warmup_steps: usize,
    /// Step at which the cosine reaches `min_lr` (nanoGPT's `lr_decay_iters`); the rate stays at
    /// `min_lr` afterwards. 0 means `train.max_steps`.
    pub decay_steps: usize,
    /// Final learning rate; at most `optimizer.lr`.
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            warmup_steps: 100,
            decay_steps: 0,
            min_lr: 1e-4,
        }
    }
}

/// `[checkpoint]`: what is kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Epoch checkpoints kept (the newest ones); the best and final weights are always kept.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { keep: 2 }
    }
}

/// `[init]`: where the weights start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// A run directory whose weights this run starts from (fine-tuning; `train --init-from`).
    /// Its model must have the same shape, and every character of this run's corpus must be
    /// in its vocabulary, which this run then uses. Empty: GPT-2's random initialization.
    pub from: String,
    /// Which of its weights: `"best"` or `"final"`.
    pub weights: Weights,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            from: String::new(),
            weights: Weights::Best,
        }
    }
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
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, format!("cannot read config: {e}")))?;
        Self::parse(&text, &origin, overrides)
    }

    /// Like [`RunConfig::load`] from text; `origin` names the text in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        let schema = Table::try_from(Self::default()).expect("the default config serializes");
        let mut table: Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(origin, describe_toml_error(&e, text)))?;
        check_against_schema(&mut table, &schema, origin)?;
        for assignment in overrides {
            apply_override(&mut table, &schema, assignment)?;
        }
        let config = Self::from_table(table, origin)?;
        config.validate().map_err(|m| ConfigError::new(origin, m))?;
        Ok(config)
    }

    fn from_table(table: Table, origin: &str) -> Result<Self, ConfigError> {
        // Section by section, so a value serde refuses (an unknown `positional`, a negative
        // count) is reported with its section even though the message comes from serde.
        let mut config = Self::default();
        for (section, value) in table {
            let fail = |e: toml::de::Error| {
                ConfigError::new(origin, format!("[{section}]: {}", e.message().trim()))
            };
            match section.as_str() {
                "model" => config.model = value.try_into().map_err(fail)?,
                "data" => config.data = value.try_into().map_err(fail)?,
                "train" => config.train = value.try_into().map_err(fail)?,
                "optimizer" => config.optimizer = value.try_into().map_err(fail)?,
                "schedule" => config.schedule = value.try_into().map_err(fail)?,
                "checkpoint" => config.checkpoint = value.try_into().map_err(fail)?,
                "init" => config.init = value.try_into().map_err(fail)?,
                _ => unreachable!("sections were checked against the schema"),
            }
        }
        Ok(config)
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

    /// Checks the ranges and relations that types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.model;
        let t = &self.train;
        let o = &self.optimizer;
        let s = &self.schedule;
        let rules: [(bool, &str, String); 20] = [
            (m.n_layer >= 1, "model.n_layer", "must be at least 1".into()),
            (m.n_head >= 1, "model.n_head", "must be at least 1".into()),
            (m.n_embd >= 1, "model.n_embd", "must be at least 1".into()),
            (
                m.n_head == 0 || m.n_embd.is_multiple_of(m.n_head),
                "model.n_embd",
                format!(
                    "{} is not divisible by model.n_head = {}",
                    m.n_embd, m.n_head
                ),
            ),
            (
                m.block_size >= 1,
                "model.block_size",
                "must be at least 1".into(),
            ),
            (
                (0.0..1.0).contains(&m.dropout),
                "model.dropout",
                format!("{} is outside [0, 1)", m.dropout),
            ),
            (
                self.data.val_fraction > 0.0 && self.data.val_fraction < 1.0,
                "data.val_fraction",
                format!("{} is outside (0, 1)", self.data.val_fraction),
            ),
            (
                t.max_steps >= 1,
                "train.max_steps",
                "must be at least 1".into(),
            ),
            (
                t.eval_interval >= 1,
                "train.eval_interval",
                "must be at least 1".into(),
            ),
            (
                t.eval_interval == 0 || t.max_steps.is_multiple_of(t.eval_interval),
                "train.max_steps",
                format!(
                    "{} is not a multiple of train.eval_interval = {}",
                    t.max_steps, t.eval_interval
                ),
            ),
            (
                t.eval_batches >= 1,
                "train.eval_batches",
                "must be at least 1".into(),
            ),
            (
                t.batch_size >= 1,
                "train.batch_size",
                "must be at least 1".into(),
            ),
            (
                t.grad_accum >= 1,
                "train.grad_accum",
                "must be at least 1".into(),
            ),
            (
                o.lr > 0.0,
                "optimizer.lr",
                format!("{} must be greater than 0", o.lr),
            ),
            (
                (0.0..1.0).contains(&o.beta1) && (0.0..1.0).contains(&o.beta2),
                "optimizer.beta1/beta2",
                format!("{} and {} must both be in [0, 1)", o.beta1, o.beta2),
            ),
            (
                o.weight_decay >= 0.0,
                "optimizer.weight_decay",
                format!("{} must not be negative", o.weight_decay),
            ),
            (
                o.grad_clip >= 0.0,
                "optimizer.grad_clip",
                format!(
                    "{} must not be negative (0 turns clipping off)",
                    o.grad_clip
                ),
            ),
            (
                s.min_lr >= 0.0 && s.min_lr <= o.lr,
                "schedule.min_lr",
                format!("{} must be in [0, optimizer.lr = {}]", s.min_lr, o.lr),
            ),
            (
                s.decay_steps == 0 || s.decay_steps >= s.warmup_steps,
                "schedule.decay_steps",
                format!(
                    "{} is before the end of warmup (schedule.warmup_steps = {})",
                    s.decay_steps, s.warmup_steps
                ),
            ),
            (
                self.checkpoint.keep >= 1,
                "checkpoint.keep",
                "must be at least 1".into(),
            ),
        ];
        match rules.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, key, problem)) => Err(format!("invalid value for `{key}`: {problem}")),
            None => Ok(()),
        }
    }
}

/// Where a config file or a `--set` refers to a key that does not exist or has the wrong type.
fn check_against_schema(
    table: &mut Table,
    schema: &Table,
    origin: &str,
) -> Result<(), ConfigError> {
    for (section, value) in table.iter_mut() {
        let Some(Value::Table(known)) = schema.get(section) else {
            return Err(ConfigError::new(
                origin,
                unknown_key(section, schema.keys().map(String::as_str)),
            ));
        };
        let Value::Table(entries) = value else {
            return Err(ConfigError::new(
                origin,
                format!("`{section}` must be a table ([{section}])"),
            ));
        };
        for (key, value) in entries.iter_mut() {
            let dotted = format!("{section}.{key}");
            let Some(default) = known.get(key) else {
                let all = all_keys(schema);
                return Err(ConfigError::new(
                    origin,
                    unknown_key(&dotted, all.iter().map(String::as_str)),
                ));
            };
            coerce(value, default)
                .map_err(|m| ConfigError::new(origin, format!("`{dotted}` {m}")))?;
        }
    }
    Ok(())
}

/// Checks that `value` has the type of the schema's `default`; integers are accepted where a
/// float is expected (`lr = 1` means 1.0).
fn coerce(value: &mut Value, default: &Value) -> Result<(), String> {
    if let (Value::Integer(i), Value::Float(_)) = (&*value, default) {
        *value = Value::Float(*i as f64);
    }
    if value.type_str() == default.type_str() {
        Ok(())
    } else {
        Err(format!(
            "must be {}, got {} {}",
            article(default.type_str()),
            value.type_str(),
            value
        ))
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// Applies one `--set section.key=value`. The value is read as TOML (`3e-4`, `true`, `"x"`);
/// anything that does not parse as TOML is taken as a bare string (`positional=learned`).
fn apply_override(table: &mut Table, schema: &Table, assignment: &str) -> Result<(), ConfigError> {
    let origin = format!("--set {assignment}");
    let Some((dotted, raw)) = assignment.split_once('=') else {
        return Err(ConfigError::new(origin, "expected section.key=value"));
    };
    let dotted = dotted.trim();
    let Some((section, key)) = dotted.split_once('.') else {
        return Err(ConfigError::new(
            origin,
            format!("`{dotted}` is not of the form section.key"),
        ));
    };
    let all = all_keys(schema);
    let Some(default) = schema
        .get(section)
        .and_then(Value::as_table)
        .and_then(|s| s.get(key))
    else {
        return Err(ConfigError::new(
            origin,
            unknown_key(dotted, all.iter().map(String::as_str)),
        ));
    };
    let raw = raw.trim();
    let mut value = toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()));
    coerce(&mut value, default)
        .map_err(|m| ConfigError::new(&origin, format!("`{dotted}` {m}")))?;
    table
        .entry(section)
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .expect("sections are tables")
        .insert(key.to_owned(), value);
    Ok(())
}

fn all_keys(schema: &Table) -> Vec<String> {
    schema
        .iter()
        .flat_map(|(section, entries)| {
            entries
                .as_table()
                .into_iter()
                .flat_map(move |t| t.keys().map(move |k| format!("{section}.{k}")))
        })
        .collect()
}

fn unknown_key<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
    let closest = known
        .map(|k| (strsim::levenshtein(key, k), k))
        .min()
        .filter(|(distance, k)| *distance <= (k.len() / 2).max(2));
    match closest {
        Some((_, k)) => format!("unknown key `{key}` (did you mean `{k}`?)"),
        None => format!("unknown key `{key}`"),
    }
}

/// One line with the TOML parser's message and the line and column where it stopped.
fn describe_toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
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
                "[model]\npositional = \"rotary\"\n",
                &[],
                "[model]: unknown variant `rotary`, expected `learned` or `sinusoidal`",
            ),
            (
                "[model]\nn_layer = -2\n",
                &[],
                "[model]: invalid value: integer `-2`",
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

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Every `section.key` of the schema.
        fn keys() -> Vec<String> {
            let schema = Table::try_from(RunConfig::default()).unwrap();
            schema
                .iter()
                .flat_map(|(section, table)| {
                    let table = table.as_table().unwrap();
                    table.keys().map(move |key| format!("{section}.{key}"))
                })
                .collect()
        }

        /// A TOML value of any type, as text.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i64>().prop_map(|v| v.to_string()),
                any::<f64>().prop_map(|v| format!("{v:?}")),
                any::<bool>().prop_map(|v| v.to_string()),
                "\\PC{0,12}".prop_map(|v| format!("{v:?}")),
                "\\PC{0,12}",
                Just("[1, 2]".to_owned()),
                Just("{ a = 1 }".to_owned()),
                Just("inf".to_owned()),
                Just("nan".to_owned()),
            ]
        }

        /// Outcomes are a config that passes validation or an error; never a panic.
        fn check(text: &str, overrides: &[String]) -> Result<(), TestCaseError> {
            match RunConfig::parse(text, "fuzz.toml", overrides) {
                Ok(config) => prop_assert!(config.validate().is_ok()),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn any_text_is_a_config_or_an_error(text in any::<String>()) {
                check(&text, &[])?;
            }

            #[test]
            fn any_assignment_is_applied_or_refused(
                picks in proptest::collection::vec((any::<prop::sample::Index>(), value()), 1..6),
                section in "[a-z_]{0,10}",
            ) {
                let keys = keys();
                let mut text = String::new();
                let mut overrides = Vec::new();
                for (i, (key, value)) in picks.iter().enumerate() {
                    let key = key.get(&keys);
                    if i % 2 == 0 {
                        let (table, field) = key.split_once('.').unwrap();
                        text.push_str(&format!("[{table}]\n{field} = {value}\n"));
                    } else {
                        overrides.push(format!("{key}={value}"));
                    }
                }
                check(&text, &overrides)?;
                // Unknown or malformed keys too.
                overrides.push(format!("{section}={}", picks[0].1));
                check("", &overrides)?;
            }

            #[test]
            fn any_override_string_is_applied_or_refused(set in any::<String>()) {
                check("", &[set])?;
            }
        }
    }
}
