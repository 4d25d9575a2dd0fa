//! The small expression language of a sweep file's `constraints`, `when` and `[derive]`:
//! config keys (`model.n_embd`), numbers, strings, `true`/`false`, `|| && ! == != < <= > >=`,
//! `+ - * / // % **` and `min max abs log log2 sqrt exp round floor ceil int float`.
//!
//! ```text
//! model.n_embd % model.n_head == 0
//! data.tokenizer == "bpe" && model.n_layer >= 4
//! optimizer.lr / 10
//! ```
//!
//! Integers stay integers under `+ - * // % **` and `/` always gives a float, as in Python.
//! Hand-written (a recursive-descent parser, ~300 lines) because the one maintained crate
//! with this syntax, evalexpr, is AGPL from version 12 on.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Value {
    /// The value as a TOML literal, as an override `key=value` takes it.
    pub fn literal(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            // `{:?}` keeps a `.0` or an exponent, so TOML reads a float back.
            Value::Float(f) => format!("{f:?}"),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => toml::Value::String(s.clone()).to_string(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Str(_) => "a string",
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Or => "||",
            Op::And => "&&",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::FloorDiv => "//",
            Op::Rem => "%",
            Op::Pow => "**",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    Key(String),
    Neg(Box<Node>),
    Not(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
    Call(String, Vec<Node>),
}

const FUNCTIONS: [&str; 12] = [
    "min", "max", "abs", "log", "log2", "sqrt", "exp", "round", "floor", "ceil", "int", "float",
];

/// A parsed expression; `Display` gives its source back.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(Value),
    Str(String),
    Name(String),
    Op(&'static str),
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let value = match text.parse::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => Value::Float(
                    text.parse::<f64>()
                        .map_err(|_| format!("`{text}` is not a number"))?,
                ),
            };
            tokens.push(Token::Num(value));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|d| *d == c)
                .ok_or_else(|| format!("the string opened at character {} is not closed", i + 1))?;
            tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = ["||", "&&", "==", "!=", "<=", ">=", "//", "**"]
                .into_iter()
                .find(|op| *op == two)
                .or_else(|| {
                    ["<", ">", "+", "-", "*", "/", "%", "!", "(", ")", ","]
                        .into_iter()
                        .find(|op| op.starts_with(c))
                })
                .ok_or_else(|| format!("unexpected `{c}`"))?;
            tokens.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.at) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn eat(&mut self, op: &str) -> bool {
        let found = self.peek_op() == Some(op);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, op: &str) -> Result<(), String> {
        match self.eat(op) {
            true => Ok(()),
            false => Err(format!("expected `{op}` {}", self.where_())),
        }
    }

    fn where_(&self) -> String {
        match self.tokens.get(self.at) {
            None => "at the end".into(),
            Some(Token::Op(op)) => format!("before `{op}`"),
            Some(Token::Name(n)) => format!("before `{n}`"),
            Some(Token::Str(s)) => format!("before \"{s}\""),
            Some(Token::Num(v)) => format!("before `{}`", v.literal()),
        }
    }

    /// Left-associative levels, loosest first: `||`, `&&`, comparisons, `+ -`, `* / // %`.
    fn binary(&mut self, level: usize) -> Result<Node, String> {
        const LEVELS: [&[(&str, Op)]; 5] = [
            &[("||", Op::Or)],
            &[("&&", Op::And)],
            &[
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("<", Op::Lt),
                (">", Op::Gt),
            ],
            &[("+", Op::Add), ("-", Op::Sub)],
            &[
                ("*", Op::Mul),
                ("/", Op::Div),
                ("//", Op::FloorDiv),
                ("%", Op::Rem),
            ],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(&(_, op)) = LEVELS[level]
            .iter()
            .find(|(s, _)| Some(*s) == self.peek_op())
        {
            self.at += 1;
            let right = self.binary(level + 1)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.eat("-") {
            return Ok(Node::Neg(Box::new(self.unary()?)));
        }
        if self.eat("!") {
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.power()
    }

    /// `**` binds tighter than a unary minus on its left and is right-associative: `-2**2` is -4.
    fn power(&mut self) -> Result<Node, String> {
        let base = self.primary()?;
        if self.eat("**") {
            let exponent = self.unary()?;
            return Ok(Node::Binary(Op::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Node, String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        match token {
            Some(Token::Num(v)) => Ok(Node::Literal(v)),
            Some(Token::Str(s)) => Ok(Node::Literal(Value::Str(s))),
            Some(Token::Name(n)) if n == "true" || n == "false" => {
                Ok(Node::Literal(Value::Bool(n == "true")))
            }
            Some(Token::Name(n)) if self.peek_op() == Some("(") => {
                if !FUNCTIONS.contains(&n.as_str()) {
                    return Err(format!(
                        "unknown function `{n}` (one of {})",
                        FUNCTIONS.join(", ")
                    ));
                }
                self.at += 1;
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.binary(0)?);
                        if self.eat(")") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                let arity_ok = match n.as_str() {
                    "min" | "max" => !args.is_empty(),
                    _ => args.len() == 1,
                };
                if !arity_ok {
                    return Err(format!(
                        "`{n}` takes {}",
                        if n.starts_with('m') {
                            "one or more arguments"
                        } else {
                            "one argument"
                        }
                    ));
                }
                Ok(Node::Call(n, args))
            }
            Some(Token::Name(n)) => Ok(Node::Key(n)),
            Some(Token::Op("(")) => {
                let inner = self.binary(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            _ => {
                self.at -= 1;
                Err(format!("expected a value {}", self.where_()))
            }
        }
    }
}

impl Expr {
    pub fn parse(source: &str) -> Result<Expr, String> {
        let fail = |e: String| format!("`{source}`: {e}");
        let tokens = tokenize(source).map_err(fail)?;
        let mut parser = Parser { tokens, at: 0 };
        let root = parser.binary(0).map_err(fail)?;
        if parser.at < parser.tokens.len() {
            return Err(fail(format!(
                "unexpected {}",
                &parser.where_()["before ".len()..]
            )));
        }
        Ok(Expr {
            source: source.to_owned(),
            root,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The config keys it reads, each once, in order of appearance.
    pub fn keys(&self) -> Vec<String> {
        fn walk(node: &Node, keys: &mut Vec<String>) {
            match node {
                Node::Key(k) if !keys.contains(k) => keys.push(k.clone()),
                Node::Neg(a) | Node::Not(a) => walk(a, keys),
                Node::Binary(_, a, b) => {
                    walk(a, keys);
                    walk(b, keys);
                }
                Node::Call(_, args) => args.iter().for_each(|a| walk(a, keys)),
                _ => {}
            }
        }
        let mut keys = Vec::new();
        walk(&self.root, &mut keys);
        keys
    }

    /// Evaluates with `get` giving each key's value; errors are one line quoting the source.
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<Value>) -> Result<Value, String> {
        eval(&self.root, get).map_err(|e| format!("`{}`: {e}", self.source))
    }
}

fn eval(node: &Node, get: &dyn Fn(&str) -> Option<Value>) -> Result<Value, String> {
    let boolean = |node: &Node, what: &str| match eval(node, get)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!("{what} needs true or false, got {}", other.kind())),
    };
    let value = match node {
        Node::Literal(v) => v.clone(),
        Node::Key(k) => get(k).ok_or_else(|| format!("`{k}` has no value here"))?,
        Node::Not(a) => Value::Bool(!boolean(a, "`!`")?),
        Node::Neg(a) => match eval(a, get)? {
            Value::Int(i) => Value::Int(i.checked_neg().ok_or("integer overflow")?),
            Value::Float(f) => Value::Float(-f),
            other => return Err(format!("`-` needs a number, got {}", other.kind())),
        },
        Node::Binary(Op::Or, a, b) => Value::Bool(boolean(a, "`||`")? || boolean(b, "`||`")?),
        Node::Binary(Op::And, a, b) => Value::Bool(boolean(a, "`&&`")? && boolean(b, "`&&`")?),
        Node::Binary(op, a, b) => binary(*op, eval(a, get)?, eval(b, get)?)?,
        Node::Call(name, args) => {
            let args = args
                .iter()
                .map(|a| eval(a, get))
                .collect::<Result<Vec<_>, _>>()?;
            call(name, args)?
        }
    };
    match value {
        Value::Float(f) if !f.is_finite() => Err(format!("the value is not finite ({f})")),
        v => Ok(v),
    }
}

fn binary(op: Op, a: Value, b: Value) -> Result<Value, String> {
    use Value::{Bool, Float, Int, Str};
    let overflow = || "integer overflow".to_string();
    let comparison = |ordering: std::cmp::Ordering| {
        use std::cmp::Ordering::*;
        Bool(match op {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            _ => ordering != Less,
        })
    };
    if matches!(op, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) {
        return match (&a, &b) {
            (Str(x), Str(y)) => Ok(comparison(x.cmp(y))),
            (Bool(x), Bool(y)) if matches!(op, Op::Eq | Op::Ne) => Ok(comparison(x.cmp(y))),
            (Int(x), Int(y)) => Ok(comparison(x.cmp(y))),
            _ => match (a.number(), b.number()) {
                (Some(x), Some(y)) => Ok(comparison(x.total_cmp(&y))),
                _ => Err(format!(
                    "cannot compare {} with {} by `{}`",
                    a.kind(),
                    b.kind(),
                    op.symbol()
                )),
            },
        };
    }
    if let (Int(x), Int(y)) = (&a, &b) {
        let (x, y) = (*x, *y);
        let zero = || Err("division by zero".to_string());
        return match op {
            Op::Add => x.checked_add(y).map(Int).ok_or_else(overflow),
            Op::Sub => x.checked_sub(y).map(Int).ok_or_else(overflow),
            Op::Mul => x.checked_mul(y).map(Int).ok_or_else(overflow),
            Op::Div if y == 0 => zero(),
            Op::Div => Ok(Float(x as f64 / y as f64)),
            Op::FloorDiv | Op::Rem if y == 0 => zero(),
            Op::FloorDiv => Ok(Int(
                x.div_euclid(y) - i64::from(y < 0 && x.rem_euclid(y) != 0)
            )),
            // Python's sign: the remainder takes the divisor's.
            Op::Rem => Ok(Int(((x % y) + y) % y)),
            Op::Pow if y >= 0 => u32::try_from(y)
                .ok()
                .and_then(|y| x.checked_pow(y))
                .map(Int)
                .ok_or_else(overflow),
            Op::Pow => Ok(Float((x as f64).powf(y as f64))),
            _ => unreachable!("logical and comparison operators return above"),
        };
    }
    let (Some(x), Some(y)) = (a.number(), b.number()) else {
        return Err(format!(
            "`{}` needs numbers, got {} and {}",
            op.symbol(),
            a.kind(),
            b.kind()
        ));
    };
    if matches!(op, Op::Div | Op::FloorDiv | Op::Rem) && y == 0.0 {
        return Err("division by zero".into());
    }
    Ok(Float(match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        Op::Div => x / y,
        Op::FloorDiv => (x / y).floor(),
        Op::Rem => x - y * (x / y).floor(),
        _ => x.powf(y),
    }))
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let numbers: Vec<f64> = args
        .iter()
        .map(|a| {
            a.number()
                .ok_or_else(|| format!("`{name}` needs numbers, got {}", a.kind()))
        })
        .collect::<Result<_, _>>()?;
    let all_int = args.iter().all(|a| matches!(a, Value::Int(_)));
    let x = numbers[0];
    let to_int = |f: f64| {
        if f.is_finite() && f.abs() < 9.0e18 {
            Ok(Value::Int(f as i64))
        } else {
            Err(format!("`{name}` of {f} is not an integer"))
        }
    };
    let positive = |f: f64| match f > 0.0 {
        true => Ok(f),
        false => Err(format!("`{name}` needs a positive number, got {f}")),
    };
    match name {
        "min" | "max" => {
            let pick = |a: &Value, b: &Value| {
                let less = a.number().unwrap() < b.number().unwrap();
                if less == (name == "min") {
                    a.clone()
                } else {
                    b.clone()
                }
            };
            let best = args
                .iter()
                .skip(1)
                .fold(args[0].clone(), |acc, v| pick(&acc, v));
            Ok(match all_int {
                true => best,
                false => Value::Float(best.number().unwrap()),
            })
        }
        "abs" => Ok(match args[0] {
            Value::Int(i) => Value::Int(i.checked_abs().ok_or("integer overflow")?),
            _ => Value::Float(x.abs()),
        }),
        "log" => Ok(Value::Float(positive(x)?.ln())),
        "log2" => Ok(Value::Float(positive(x)?.log2())),
        "sqrt" if x < 0.0 => Err(format!("`sqrt` of a negative number ({x})")),
        "sqrt" => Ok(Value::Float(x.sqrt())),
        "exp" => Ok(Value::Float(x.exp())),
        "round" => to_int(x.round()),
        "floor" => to_int(x.floor()),
        "ceil" => to_int(x.ceil()),
        "int" => to_int(x.trunc()),
        _ => Ok(Value::Float(x)),
    }
}

#[cfg(test)]
mod tests {
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
}
