//! Reading a config's TOML against the schema (the default config): unknown keys with the
//! nearest known one, values of the wrong type, `--set section.key=value` overrides (also
//! `section.table.key`), and the
//! TOML parser's errors as one line.

use toml::{Table, Value};

use super::ConfigError;

/// Where a config file or a `--set` refers to a key that does not exist or has the wrong type.
/// Sections may hold tables of their own (`[optimizer.muon]`), checked the same way.
pub(super) fn check_against_schema(
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
        check_entries(entries, known, section, schema, origin)?;
    }
    Ok(())
}

fn check_entries(
    entries: &mut Table,
    known: &Table,
    prefix: &str,
    schema: &Table,
    origin: &str,
) -> Result<(), ConfigError> {
    for (key, value) in entries.iter_mut() {
        let dotted = format!("{prefix}.{key}");
        let Some(default) = known.get(key) else {
            let all = all_keys(schema);
            return Err(ConfigError::new(
                origin,
                unknown_key(&dotted, all.iter().map(String::as_str)),
            ));
        };
        match (value, default) {
            (Value::Table(inner), Value::Table(known_inner)) => {
                check_entries(inner, known_inner, &dotted, schema, origin)?
            }
            (value, default) => coerce(value, default)
                .map_err(|m| ConfigError::new(origin, format!("`{dotted}` {m}")))?,
        }
    }
    Ok(())
}

/// Checks that `value` has the type of the schema's `default`; integers are accepted where a
/// float is expected (`lr = 1` means 1.0).
fn coerce(value: &mut Value, default: &Value) -> Result<(), String> {
    match (&*value, default) {
        (Value::Integer(i), Value::Float(_)) => *value = Value::Float(*i as f64),
        // `train.devices=0` names a device; the key is a string ("0,1", "all").
        (Value::Integer(i), Value::String(_)) => *value = Value::String(i.to_string()),
        _ => {}
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
pub(super) fn apply_override(
    table: &mut Table,
    schema: &Table,
    assignment: &str,
) -> Result<(), ConfigError> {
    let origin = format!("--set {assignment}");
    let Some((dotted, raw)) = assignment.split_once('=') else {
        return Err(ConfigError::new(origin, "expected section.key=value"));
    };
    let dotted = dotted.trim();
    let path: Vec<&str> = dotted.split('.').collect();
    let Some((key, tables)) = path.split_last().filter(|(_, tables)| !tables.is_empty()) else {
        return Err(ConfigError::new(
            origin,
            format!("`{dotted}` is not of the form section.key"),
        ));
    };
    let all = all_keys(schema);
    let mut known = Some(schema);
    for table in tables {
        known = known.and_then(|t| t.get(*table)).and_then(Value::as_table);
    }
    let Some(default) = known
        .and_then(|t| t.get(*key))
        .filter(|default| !default.is_table())
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
    let mut target = table;
    for name in tables {
        let entry = target
            .entry(*name)
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(inner) = entry else {
            let problem = format!("`{name}` must be a table, not a value");
            return Err(ConfigError::new(origin, problem));
        };
        target = inner;
    }
    target.insert(key.to_string(), value);
    Ok(())
}

/// Every key of the schema as `section.key` (`section.table.key` inside nested tables).
pub(super) fn all_keys(schema: &Table) -> Vec<String> {
    fn leaves(prefix: &str, table: &Table, keys: &mut Vec<String>) {
        for (key, value) in table {
            let dotted = format!("{prefix}.{key}");
            match value {
                Value::Table(inner) => leaves(&dotted, inner, keys),
                _ => keys.push(dotted),
            }
        }
    }
    let mut keys = Vec::new();
    for (section, entries) in schema {
        if let Value::Table(entries) = entries {
            leaves(section, entries, &mut keys);
        }
    }
    keys
}

pub fn unknown_key<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> String {
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
pub(super) fn describe_toml_error(error: &toml::de::Error, text: &str) -> String {
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
