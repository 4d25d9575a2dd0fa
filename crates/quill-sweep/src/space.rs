//! The search space: the values each swept key may take, and the conversions every sampler
//! shares: a point of the unit cube to a value (random, Sobol), TPE's dimensions and back.
//!
//! ```toml
//! [space]
//! "optimizer.lr" = { log_uniform = [1e-4, 3e-3] }
//! "model.dropout" = { uniform = [0.0, 0.2] }
//! "model.n_layer" = { int = [2, 6], step = 2 }
//! "model.n_embd" = { log_int = [64, 512] }
//! "model.positional" = { choice = ["learned", "sinusoidal"], weights = [2, 1] }
//! "data.vocab_size" = { int = [256, 2048], step = 256, when = 'data.tokenizer == "bpe"' }
//! "train.batch_size" = [16, 32]      # a plain list is a choice
//! ```

use toml::Value;

use crate::expr::Expr;
use crate::tpe::Dist;

/// The keys a parameter's table may have.
const SPEC_KEYS: [&str; 8] = [
    "uniform",
    "log_uniform",
    "int",
    "log_int",
    "choice",
    "step",
    "weights",
    "when",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Choice {
        values: Vec<Value>,
        weights: Option<Vec<f64>>,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    LogUniform {
        low: f64,
        high: f64,
    },
    Int {
        low: i64,
        high: i64,
        step: i64,
    },
    LogInt {
        low: i64,
        high: i64,
    },
}

/// One swept key.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub key: String,
    pub kind: Kind,
    /// The parameter is swept only where this holds; elsewhere the key keeps the base value.
    pub when: Option<Expr>,
}

/// Whether a TOML table describes a parameter (rather than grouping keys).
pub fn is_spec(table: &toml::Table) -> bool {
    ["uniform", "log_uniform", "int", "log_int", "choice"]
        .iter()
        .any(|k| table.contains_key(*k))
}

fn number(v: &Value) -> Option<f64> {
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .filter(|x| x.is_finite())
}

fn pair<T>(
    key: &str,
    kind: &str,
    v: &Value,
    get: impl Fn(&Value) -> Option<T>,
) -> Result<(T, T), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => match (get(a), get(b)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "`{key}`: {kind} needs [low, high] of finite numbers, got {v}"
            )),
        },
        _ => Err(format!("`{key}`: {kind} needs [low, high], got {v}")),
    }
}

impl Param {
    /// A `[space]` entry (or a `[sweep]` one: lists and, in random mode, ranges).
    pub fn parse(key: &str, value: Value) -> Result<Self, String> {
        let table = match value {
            Value::Array(values) => return Self::choice(key, values, None, None),
            Value::Table(table) => table,
            other => {
                return Err(format!(
                    "`{key}` must be a list of values or a table such as {{ log_uniform = [a, b] }}, got {other}"
                ));
            }
        };
        if let Some(unknown) = table.keys().find(|k| !SPEC_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "`{key}`: unknown setting `{unknown}` (a parameter has one of uniform, log_uniform, int, log_int, choice, and step, weights, when)"
            ));
        }
        let kinds: Vec<&String> = table
            .keys()
            .filter(|k| !["step", "weights", "when"].contains(&k.as_str()))
            .collect();
        let [kind] = kinds.as_slice() else {
            return Err(format!(
                "`{key}` needs exactly one of uniform, log_uniform, int, log_int, choice"
            ));
        };
        let when = match table.get("when") {
            None => None,
            Some(Value::String(text)) => {
                Some(Expr::parse(text).map_err(|e| format!("`{key}`: when: {e}"))?)
            }
            Some(other) => return Err(format!("`{key}`: when must be a string, got {other}")),
        };
        let bounds = &table[kind.as_str()];
        let step = table.get("step");
        if step.is_some() && kind.as_str() != "int" {
            return Err(format!("`{key}`: step goes with int ranges only"));
        }
        if table.contains_key("weights") && kind.as_str() != "choice" {
            return Err(format!("`{key}`: weights go with choice only"));
        }
        let kind = match kind.as_str() {
            "choice" => {
                let Value::Array(values) = bounds.clone() else {
                    return Err(format!("`{key}`: choice needs a list, got {bounds}"));
                };
                return Self::choice(key, values, table.get("weights"), when);
            }
            "uniform" | "log_uniform" => {
                let (low, high) = pair(key, kind, bounds, number)?;
                let log = kind.as_str() == "log_uniform";
                if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) || (log && low <= 0.0) {
                    return Err(format!(
                        "`{key}`: {kind} needs low < high{}, got [{low}, {high}]",
                        if log { " and low > 0" } else { "" }
                    ));
                }
                match log {
                    true => Kind::LogUniform { low, high },
                    false => Kind::Uniform { low, high },
                }
            }
            "int" => {
                let (low, high) = pair(key, kind, bounds, Value::as_integer)?;
                let step = match step {
                    None => 1,
                    Some(Value::Integer(s)) if *s > 0 => *s,
                    Some(other) => {
                        return Err(format!(
                            "`{key}`: step must be a positive integer, got {other}"
                        ));
                    }
                };
                if low > high {
                    return Err(format!(
                        "`{key}`: int needs low <= high, got [{low}, {high}]"
                    ));
                }
                Kind::Int { low, high, step }
            }
            _ => {
                let (low, high) = pair(key, kind, bounds, Value::as_integer)?;
                if low < 1 || low > high {
                    return Err(format!(
                        "`{key}`: log_int needs 1 <= low <= high, got [{low}, {high}]"
                    ));
                }
                Kind::LogInt { low, high }
            }
        };
        Ok(Self {
            key: key.to_owned(),
            kind,
            when,
        })
    }

    fn choice(
        key: &str,
        values: Vec<Value>,
        weights: Option<&Value>,
        when: Option<Expr>,
    ) -> Result<Self, String> {
        if values.is_empty() {
            return Err(format!("`{key}`: the list of values is empty"));
        }
        if let Some(bad) = values
            .iter()
            .find(|v| v.as_float().is_some_and(|x| !x.is_finite()))
        {
            return Err(format!("`{key}`: {bad} is not a finite number"));
        }
        let weights = match weights {
            None => None,
            Some(Value::Array(ws)) => {
                let ws: Option<Vec<f64>> = ws.iter().map(number).collect();
                match ws {
                    Some(ws)
                        if ws.len() == values.len()
                            && ws.iter().all(|w| *w >= 0.0)
                            && ws.iter().sum::<f64>() > 0.0 =>
                    {
                        Some(ws)
                    }
                    _ => {
                        return Err(format!(
                            "`{key}`: weights must be {} numbers >= 0, not all 0",
                            values.len()
                        ));
                    }
                }
            }
            Some(other) => return Err(format!("`{key}`: weights must be a list, got {other}")),
        };
        Ok(Self {
            key: key.to_owned(),
            kind: Kind::Choice { values, weights },
            when,
        })
    }

    /// Every value, for a grid: a choice's list or an int range's steps.
    pub fn grid_values(&self) -> Option<Vec<Value>> {
        match &self.kind {
            Kind::Choice { values, .. } => Some(values.clone()),
            Kind::Int { low, high, step } => Some(
                (0..=(high - low) / step)
                    .map(|i| Value::Integer(low + i * step))
                    .collect(),
            ),
            Kind::LogInt { low, high } if high - low < 10_000 => {
                Some((*low..=*high).map(Value::Integer).collect())
            }
            _ => None,
        }
    }

    /// Whether the parameter is searched on a log scale.
    pub fn is_log(&self) -> bool {
        matches!(self.kind, Kind::LogUniform { .. } | Kind::LogInt { .. })
    }

    /// The value at `u` in [0, 1): uniform in the parameter's own scale (weighted for choices).
    pub fn from_unit(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0 - 1e-12);
        match &self.kind {
            Kind::Choice { values, weights } => {
                let index = match weights {
                    None => (u * values.len() as f64) as usize,
                    Some(ws) => {
                        let total: f64 = ws.iter().sum();
                        let mut acc = 0.0;
                        ws.iter()
                            .position(|w| {
                                acc += w / total;
                                u < acc
                            })
                            .unwrap_or(values.len() - 1)
                    }
                };
                values[index.min(values.len() - 1)].clone()
            }
            Kind::Uniform { low, high } => Value::Float(round4(low + u * (high - low))),
            Kind::LogUniform { low, high } => {
                Value::Float(round4((low.ln() + u * (high.ln() - low.ln())).exp()))
            }
            Kind::Int { low, high, step } => {
                let n = (high - low) / step + 1;
                Value::Integer(low + ((u * n as f64) as i64).min(n - 1) * step)
            }
            Kind::LogInt { low, high } => {
                let (a, b) = ((*low as f64 - 0.5).max(0.5).ln(), (*high as f64 + 0.5).ln());
                Value::Integer(((a + u * (b - a)).exp().round() as i64).clamp(*low, *high))
            }
        }
    }

    /// This parameter as a dimension of TPE.
    pub fn dist(&self) -> Dist {
        match &self.kind {
            Kind::Choice { values, weights } => Dist::Choice {
                weights: weights.clone().unwrap_or_else(|| vec![1.0; values.len()]),
            },
            Kind::Uniform { low, high } => Dist::Float {
                low: *low,
                high: *high,
                log: false,
            },
            Kind::LogUniform { low, high } => Dist::Float {
                low: *low,
                high: *high,
                log: true,
            },
            Kind::Int { low, high, step } => Dist::Int {
                low: *low,
                high: *high,
                step: *step,
                log: false,
            },
            Kind::LogInt { low, high } => Dist::Int {
                low: *low,
                high: *high,
                step: 1,
                log: true,
            },
        }
    }

    /// The value of a TPE coordinate (a choice's index, a number).
    pub fn from_internal(&self, x: f64) -> Value {
        match &self.kind {
            Kind::Choice { values, .. } => {
                values[(x.round().max(0.0) as usize).min(values.len() - 1)].clone()
            }
            Kind::Uniform { low, high } | Kind::LogUniform { low, high } => {
                Value::Float(round4(x.clamp(*low, *high)))
            }
            Kind::Int { low, high, .. } | Kind::LogInt { low, high } => {
                Value::Integer((x.round() as i64).clamp(*low, *high))
            }
        }
    }

    /// A value's TPE coordinate (and a plot's): a choice's index, else the number.
    pub fn to_internal(&self, value: &Value) -> Option<f64> {
        match &self.kind {
            Kind::Choice { values, .. } => values.iter().position(|v| v == value).map(|i| i as f64),
            _ => number(value),
        }
    }

    /// A choice's values as labels.
    pub fn labels(&self) -> Option<Vec<String>> {
        match &self.kind {
            Kind::Choice { values, .. } => Some(values.iter().map(literal).collect()),
            _ => None,
        }
    }
}

/// Four significant digits: drawn values (and trial names) stay readable.
pub fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 3 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let rounded = (x * scale).round() / scale;
    // Printing through a string drops the binary noise of the division (0.30000000000000004).
    format!("{rounded:.*}", digits.max(0) as usize)
        .parse()
        .unwrap_or(rounded)
}

/// A value as TOML writes it (`0.001`, `true`, `"learned"`).
pub fn literal(value: &Value) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests;
