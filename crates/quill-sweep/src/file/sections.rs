//! The inline tables of a sweep file: `sampler`, `pruner`, `resources`, `budget`.

use std::time::Duration;

use quill_train::config::unknown_key;
use toml::{Table, Value};

use super::{Budget, PrunerKind, PrunerSpec, Resources, Sampler, SamplerKind};

/// The entries of an inline table such as `sampler = { kind = "tpe", seed = 0 }`, each known
/// key taken by `take`; any key left over is refused with a suggestion.
fn fields(name: &str, spec: Option<Value>, known: &[&str]) -> Result<Option<Table>, String> {
    let table = match spec {
        None => return Ok(None),
        Some(Value::Table(table)) => table,
        Some(other) => return Err(format!("`{name}` must be a table, got {other}")),
    };
    if let Some(unknown) = table.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "{name}: {}",
            unknown_key(unknown, known.iter().copied())
        ));
    }
    Ok(Some(table))
}

fn count(name: &str, key: &str, table: &Table, min: i64) -> Result<Option<usize>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::Integer(n)) if *n >= min => Ok(Some(*n as usize)),
        Some(other) => Err(format!(
            "{name}.{key} must be an integer >= {min}, got {other}"
        )),
    }
}

pub(super) fn parse_sampler(spec: Value) -> Result<Sampler, String> {
    let t = fields("sampler", Some(spec), &["kind", "seed", "n_startup"])?.expect("given");
    let kind = match t.get("kind").and_then(Value::as_str) {
        Some("grid") => SamplerKind::Grid,
        Some("random") => SamplerKind::Random,
        Some("sobol") => SamplerKind::Sobol,
        Some("tpe") => SamplerKind::Tpe,
        _ => {
            return Err(format!(
                "sampler.kind must be \"grid\", \"random\", \"sobol\" or \"tpe\", got {}",
                t.get("kind").map_or("nothing".into(), |v| v.to_string())
            ));
        }
    };
    Ok(Sampler {
        kind,
        seed: count("sampler", "seed", &t, 0)?.unwrap_or(0) as u64,
        n_startup: count("sampler", "n_startup", &t, 1)?.unwrap_or(10),
    })
}

pub(super) fn parse_pruner(spec: Option<Value>) -> Result<PrunerSpec, String> {
    let Some(t) = fields("pruner", spec, &["kind", "eta", "min_steps", "n_startup"])? else {
        return Ok(PrunerSpec {
            kind: PrunerKind::None,
            eta: 3,
            min_steps: 0,
            n_startup: 3,
        });
    };
    let kind = match t.get("kind").and_then(Value::as_str) {
        Some("none") => PrunerKind::None,
        Some("median") => PrunerKind::Median,
        Some("asha") => PrunerKind::Asha,
        Some("hyperband") => PrunerKind::Hyperband,
        _ => {
            return Err(format!(
                "pruner.kind must be \"none\", \"median\", \"asha\" or \"hyperband\", got {}",
                t.get("kind").map_or("nothing".into(), |v| v.to_string())
            ));
        }
    };
    let eta = match t.get("eta") {
        None => 3,
        Some(Value::Integer(n)) if *n >= 2 => *n as usize,
        Some(other) => return Err(format!("pruner.eta must be an integer >= 2, got {other}")),
    };
    Ok(PrunerSpec {
        kind,
        eta,
        min_steps: count("pruner", "min_steps", &t, 0)?.unwrap_or(0),
        n_startup: count("pruner", "n_startup", &t, 1)?.unwrap_or(3),
    })
}

pub(super) fn parse_resources(spec: Option<Value>) -> Result<Resources, String> {
    let mut resources = Resources {
        workers: 1,
        threads: None,
        devices: None,
        per_device: 1,
    };
    let Some(t) = fields(
        "resources",
        spec,
        &["workers", "threads", "devices", "per_device"],
    )?
    else {
        return Ok(resources);
    };
    if let Some(workers) = count("resources", "workers", &t, 1)? {
        resources.workers = workers;
    }
    resources.threads = count("resources", "threads", &t, 1)?;
    if let Some(per_device) = count("resources", "per_device", &t, 1)? {
        resources.per_device = per_device;
    }
    match t.get("devices") {
        None => {}
        Some(Value::String(list)) => {
            resources.devices =
                Some(parse_devices(list).map_err(|e| format!("resources.devices: {e}"))?);
        }
        Some(other) => {
            return Err(format!(
                "resources.devices must be a string such as \"0,1\", got {other}"
            ));
        }
    }
    Ok(resources)
}

/// `"0,1,3"` as device indices.
pub fn parse_devices(list: &str) -> Result<Vec<usize>, String> {
    let devices: Result<Vec<usize>, _> = list.split(',').map(|d| d.trim().parse()).collect();
    match devices {
        Ok(devices) if !devices.is_empty() => Ok(devices),
        _ => Err(format!(
            "`{list}` is not a list of device numbers such as \"0,1\""
        )),
    }
}

pub(super) fn parse_budget(spec: Option<Value>) -> Result<Budget, String> {
    let Some(t) = fields(
        "budget",
        spec,
        &["max_trials", "max_wall", "max_total_steps", "target"],
    )?
    else {
        return Ok(Budget::default());
    };
    let max_wall = match t.get("max_wall") {
        None => None,
        Some(Value::String(text)) => Some(parse_duration(text).ok_or_else(|| {
            format!(
                "budget.max_wall: `{text}` is not a duration such as \"20m\", \"1h30m\", \"90s\""
            )
        })?),
        Some(other) => {
            return Err(format!(
                "budget.max_wall must be a string such as \"20m\", got {other}"
            ));
        }
    };
    let target = match t.get("target") {
        None => None,
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(x) if x.is_finite() => Some(x),
            _ => return Err(format!("budget.target must be a finite number, got {v}")),
        },
    };
    Ok(Budget {
        max_trials: count("budget", "max_trials", &t, 1)?,
        max_wall,
        max_total_steps: count("budget", "max_total_steps", &t, 1)?,
        target,
    })
}

/// `"1h30m"`, `"20m"`, `"90s"`, `"2h"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut seconds = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = digits.parse().ok()?;
                digits.clear();
                seconds += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    (digits.is_empty() && seconds > 0).then(|| Duration::from_secs(seconds))
}
