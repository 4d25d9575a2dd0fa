//! Reading a config's TOML against the schema (the default config): unknown keys with the
//! nearest known one, values of the wrong type, `--set section.key=value` overrides, and the
//! TOML parser's errors as one line.

use toml::{Table, Value};

use super::ConfigError;

/// Where a config file or a `--set` refers to a key that does not exist or has the wrong type.
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

pub(super) fn all_keys(schema: &Table) -> Vec<String> {
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
