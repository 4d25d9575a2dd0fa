use super::*;

fn param(text: &str) -> Result<Param, String> {
    let table: toml::Table = toml::from_str(&format!("p = {text}")).unwrap();
    Param::parse("a.b", table["p"].clone())
}

#[test]
fn every_kind_parses_and_maps_the_unit_interval_into_its_range() {
    for (text, lo, hi) in [
        ("{ uniform = [0.0, 0.2] }", 0.0, 0.2),
        ("{ log_uniform = [1e-4, 1e-2] }", 1e-4, 1e-2),
        ("{ int = [2, 8], step = 2 }", 2.0, 8.0),
        ("{ log_int = [16, 512] }", 16.0, 512.0),
    ] {
        let p = param(text).unwrap();
        for i in 0..100 {
            let v = p.from_unit(i as f64 / 100.0);
            let x = number(&v).unwrap();
            assert!((lo..=hi).contains(&x), "{text}: {v}");
            assert_eq!(p.to_internal(&v), Some(x));
        }
        assert_eq!(number(&p.from_unit(0.0)), Some(lo), "{text}");
        assert_eq!(
            number(&p.from_unit(0.999_999)).map(|x| x.round()),
            Some(hi.round()),
            "{text}"
        );
    }
    let p = param("{ int = [2, 8], step = 2 }").unwrap();
    let grid: Vec<String> = p.grid_values().unwrap().iter().map(literal).collect();
    assert_eq!(grid, ["2", "4", "6", "8"]);
    assert!(
        param("{ uniform = [0.0, 1.0] }")
            .unwrap()
            .grid_values()
            .is_none()
    );
}

#[test]
fn weighted_choices_follow_their_weights_and_when_parses() {
    let p = param("{ choice = [\"a\", \"b\"], weights = [3, 1], when = 'x.y == 2' }").unwrap();
    let a = (0..1000)
        .filter(|i| p.from_unit(*i as f64 / 1000.0).as_str() == Some("a"))
        .count();
    assert_eq!(a, 750);
    assert_eq!(p.when.as_ref().unwrap().keys(), ["x.y"]);
    assert_eq!(p.to_internal(&Value::String("b".into())), Some(1.0));
    assert_eq!(p.from_internal(1.0), Value::String("b".into()));
}

#[test]
fn bad_parameters_are_named() {
    for (text, expected) in [
        ("[]", "the list of values is empty"),
        ("{ uniform = [1.0, 0.0] }", "needs low < high"),
        ("{ log_uniform = [0.0, 1.0] }", "and low > 0"),
        (
            "{ int = [1, 4], step = 0 }",
            "step must be a positive integer",
        ),
        ("{ log_int = [0, 4] }", "1 <= low"),
        (
            "{ choice = [1, 2], weights = [1] }",
            "weights must be 2 numbers",
        ),
        ("{ uniform = [0.0, 1.0], step = 2 }", "step goes with int"),
        ("{ uniform = [0.0, 1.0], int = [1, 2] }", "exactly one of"),
        ("{ unifrom = [0.0, 1.0] }", "unknown setting `unifrom`"),
        ("{ uniform = [0.0, inf] }", "finite numbers"),
        ("{ choice = [1, 2], when = 'x +' }", "when:"),
        ("3", "must be a list of values"),
    ] {
        let err = param(text).unwrap_err();
        assert!(err.contains(expected), "{text}: {expected:?} in {err:?}");
        assert!(err.contains("`a.b`"), "{err}");
    }
}

#[test]
fn four_significant_digits() {
    assert_eq!(round4(0.000_123_456), 0.000_123_5);
    assert_eq!(round4(4.567_89), 4.568);
    assert_eq!(round4(1234.5), 1235.0);
    assert_eq!(round4(0.3), 0.3);
}
