//! The expression language's tokenizer and recursive-descent parser.

use super::{FUNCTIONS, Node, Op, Value};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Num(Value),
    Str(String),
    Name(String),
    Op(&'static str),
}

pub(super) fn tokenize(source: &str) -> Result<Vec<Token>, String> {
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

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) at: usize,
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

    pub(super) fn where_(&self) -> String {
        match self.tokens.get(self.at) {
            None => "at the end".into(),
            Some(Token::Op(op)) => format!("before `{op}`"),
            Some(Token::Name(n)) => format!("before `{n}`"),
            Some(Token::Str(s)) => format!("before \"{s}\""),
            Some(Token::Num(v)) => format!("before `{}`", v.literal()),
        }
    }

    /// Left-associative levels, loosest first: `||`, `&&`, comparisons, `+ -`, `* / // %`.
    pub(super) fn binary(&mut self, level: usize) -> Result<Node, String> {
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
