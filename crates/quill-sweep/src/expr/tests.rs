use super::*;

fn run(source: &str) -> Result<Value, String> {
    let get = |k: &str| match k {
        "model.n_embd" => Some(Value::Int(64)),
        "model.n_head" => Some(Value::Int(6)),
        "optimizer.lr" => Some(Value::Float(1e-3)),
        "data.tokenizer" => Some(Value::Str("bpe".into())),
        "train.amp" => Some(Value::Bool(true)),
        _ => None,
    };
    Expr::parse(source)?.eval(&get)
}

#[test]
fn arithmetic_follows_python() {
    let cases = [
        ("1 + 2 * 3", Value::Int(7)),
        ("(1 + 2) * 3", Value::Int(9)),
        ("7 / 2", Value::Float(3.5)),
        ("7 // 2", Value::Int(3)),
        ("-7 // 2", Value::Int(-4)),
        ("-7 % 3", Value::Int(2)),
        ("7 % -3", Value::Int(-2)),
        ("2 ** 3 ** 2", Value::Int(512)),
        ("-2 ** 2", Value::Int(-4)),
        ("2 ** -1", Value::Float(0.5)),
        ("1e-3 * 2", Value::Float(0.002)),
        ("10 - 2 - 3", Value::Int(5)),
        ("max(2, 5.0, 3)", Value::Float(5.0)),
        ("min(4, 2)", Value::Int(2)),
        ("round(2.5)", Value::Int(3)),
        ("int(log2(256))", Value::Int(8)),
        ("abs(-3)", Value::Int(3)),
        ("optimizer.lr / 10", Value::Float(1e-4)),
    ];
    for (source, want) in cases {
        assert_eq!(run(source), Ok(want), "{source}");
    }
}

#[test]
fn logic_and_comparisons() {
    let cases = [
        ("model.n_embd % model.n_head == 0", false),
        ("model.n_embd % 4 == 0", true),
        ("data.tokenizer == \"bpe\" && model.n_head >= 4", true),
        ("data.tokenizer == 'char' || !train.amp", false),
        ("1 < 1.5", true),
        ("2 == 2.0", true),
        ("\"a\" < \"b\"", true),
        // `&&` short-circuits: the unknown key on the right is never read.
        ("false && nothing.here > 1", false),
    ];
    for (source, want) in cases {
        assert_eq!(run(source), Ok(Value::Bool(want)), "{source}");
    }
}

#[test]
fn keys_in_order_once() {
    let e = Expr::parse("model.n_embd % model.n_head == 0 && model.n_embd > 1").unwrap();
    assert_eq!(e.keys(), ["model.n_embd", "model.n_head"]);
    assert_eq!(
        e.to_string(),
        "model.n_embd % model.n_head == 0 && model.n_embd > 1"
    );
}

#[test]
fn literals_read_back_as_toml() {
    for value in [
        Value::Float(1e-4),
        Value::Float(2.0),
        Value::Int(-3),
        Value::Str("a\"b".into()),
    ] {
        let text = format!("x = {}", value.literal());
        let parsed: toml::Table = text.parse().unwrap();
        let back = match &parsed["x"] {
            toml::Value::Float(f) => Value::Float(*f),
            toml::Value::Integer(i) => Value::Int(*i),
            toml::Value::String(s) => Value::Str(s.clone()),
            other => panic!("{other}"),
        };
        assert_eq!(back, value);
    }
}

#[test]
fn errors_are_one_line_and_name_the_problem() {
    let cases = [
        ("model.n_embd %", "expected a value at the end"),
        ("(1 + 2", "expected `)` at the end"),
        ("1 2", "unexpected `2`"),
        ("1 $ 2", "unexpected `$`"),
        ("'abc", "not closed"),
        ("foo(1)", "unknown function `foo`"),
        ("min()", "`min` takes one or more"),
        ("1 / 0", "division by zero"),
        ("7 % 0", "division by zero"),
        ("model.n_embed + 1", "`model.n_embed` has no value"),
        (
            "data.tokenizer + 1",
            "`+` needs numbers, got a string and an integer",
        ),
        ("1 && true", "`&&` needs true or false, got an integer"),
        ("log(0)", "`log` needs a positive number"),
        ("9223372036854775807 + 1", "integer overflow"),
        ("exp(1000)", "not finite"),
        ("true < false", "cannot compare a boolean with a boolean"),
    ];
    for (source, want) in cases {
        let error = run(source).unwrap_err();
        assert!(error.contains(want), "{source}: {error}");
        assert!(error.starts_with(&format!("`{source}`: ")), "{error}");
        assert!(!error.contains('\n'));
    }
}
