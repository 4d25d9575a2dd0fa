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

use parse::{Parser, tokenize};

mod parse;

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
mod tests;
