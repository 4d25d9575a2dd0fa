//! Property tests: any text, any `--set`, is a valid config or a one-line error, never a
//! panic.

use super::*;
use proptest::prelude::*;
use toml::Table;

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
