//! `ProxyHCExpr` conditions: the forms of Apache's expression syntax that health checks use
//! in practice. Parsed once at config load; evaluated against each check's response.
//!
//! ```text
//! expr    := and ('||' and)*
//! and     := unary ('&&' unary)*
//! unary   := '!' unary | '(' expr ')' | compare
//! compare := operand ('=~' | '!~') /regex/
//!          | operand ('==' | '!=' | '-eq' | '-ne' | '-lt' | '-le' | '-gt' | '-ge') operand
//!          | operand 'in' '{' operand (',' operand)* '}'
//! operand := %{REQUEST_STATUS} | hc('body') | 'string' | "string" | number
//! ```

#[derive(Clone, Debug)]
pub enum Operand {
    Status,
    Body,
    Literal(String),
}

#[derive(Clone, Debug)]
pub enum Expr {
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Match(Operand, regex::Regex, bool),
    StrEq(Operand, Operand, bool),
    NumCmp(Operand, NumOp, Operand),
    In(Operand, Vec<Operand>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Status,
    Body,
    Str(String),
    Regex(String),
    Op(&'static str),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &s[i..];
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let ops: [&'static str; 14] = [
            "&&", "||", "=~", "!~", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "in", "!",
        ];
        if let Some(v) = rest.strip_prefix("%{") {
            let end = v.find('}').ok_or("unclosed %{")?;
            let var = &v[..end];
            if !var.eq_ignore_ascii_case("REQUEST_STATUS") {
                return Err(format!(
                    "variable %{{{var}}} is not supported (only %{{REQUEST_STATUS}})"
                ));
            }
            out.push(Tok::Status);
            i += 2 + end + 1;
        } else if rest.starts_with("hc(") {
            let end = rest.find(')').ok_or("unclosed hc(")?;
            let arg = rest[3..end].trim().trim_matches(['\'', '"']);
            if arg != "body" {
                return Err(format!("hc('{arg}') is not supported (only hc('body'))"));
            }
            out.push(Tok::Body);
            i += end + 1;
        } else if c == b'\'' || c == b'"' {
            let end = rest[1..].find(c as char).ok_or("unterminated string")?;
            out.push(Tok::Str(rest[1..1 + end].to_string()));
            i += end + 2;
        } else if c == b'/' {
            let mut j = 1;
            let mut re = String::new();
            while j < rest.len() {
                let ch = rest.as_bytes()[j];
                if ch == b'\\' && rest.as_bytes().get(j + 1) == Some(&b'/') {
                    re.push('/');
                    j += 2;
                    continue;
                }
                if ch == b'/' {
                    break;
                }
                re.push(ch as char);
                j += 1;
            }
            if j >= rest.len() {
                return Err("unterminated /regex/".into());
            }
            out.push(Tok::Regex(re));
            i += j + 1;
        } else if c == b'(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == b')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == b'{' {
            out.push(Tok::LBrace);
            i += 1;
        } else if c == b'}' {
            out.push(Tok::RBrace);
            i += 1;
        } else if c == b',' {
            out.push(Tok::Comma);
            i += 1;
        } else if let Some(op) = ops.iter().find(|op| {
            rest.starts_with(**op)
                && (!op.chars().all(|c| c.is_ascii_alphabetic())
                    || !rest[op.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
        }) {
            out.push(Tok::Op(op));
            i += op.len();
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            out.push(Tok::Str(rest[..end].to_string()));
            i += end;
        } else {
            return Err(format!("unexpected '{}'", &rest[..rest.len().min(12)]));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Op("||")) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::Op("&&")) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Op("!")) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.expr()?;
                if self.next() != Some(Tok::RParen) {
                    return Err("missing ')'".into());
                }
                Ok(e)
            }
            _ => self.compare(),
        }
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Status) => Ok(Operand::Status),
            Some(Tok::Body) => Ok(Operand::Body),
            Some(Tok::Str(s)) => Ok(Operand::Literal(s)),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
    fn compare(&mut self) -> Result<Expr, String> {
        let left = self.operand()?;
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        Ok(match op {
            "=~" | "!~" => match self.next() {
                Some(Tok::Regex(re)) => Expr::Match(
                    left,
                    regex::Regex::new(&re).map_err(|e| format!("bad regex /{re}/: {e}"))?,
                    op == "!~",
                ),
                other => return Err(format!("expected /regex/, found {other:?}")),
            },
            "==" | "!=" => Expr::StrEq(left, self.operand()?, op == "!="),
            "in" => {
                if self.next() != Some(Tok::LBrace) {
                    return Err("expected '{' after in".into());
                }
                let mut list = vec![self.operand()?];
                loop {
                    match self.next() {
                        Some(Tok::Comma) => list.push(self.operand()?),
                        Some(Tok::RBrace) => break,
                        other => return Err(format!("expected ',' or '}}', found {other:?}")),
                    }
                }
                Expr::In(left, list)
            }
            num => {
                let op = match num {
                    "-eq" => NumOp::Eq,
                    "-ne" => NumOp::Ne,
                    "-lt" => NumOp::Lt,
                    "-le" => NumOp::Le,
                    "-gt" => NumOp::Gt,
                    "-ge" => NumOp::Ge,
                    other => return Err(format!("operator '{other}' is not supported here")),
                };
                Expr::NumCmp(left, op, self.operand()?)
            }
        })
    }
}

/// Parses an expression, with or without Apache's surrounding braces.
pub fn parse(text: &str) -> Result<Expr, String> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let mut p = Parser {
        toks: tokenize(t)?,
        pos: 0,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(e)
}

/// What a check saw.
pub struct CheckResult<'a> {
    pub status: u16,
    pub body: &'a str,
}

fn value(o: &Operand, r: &CheckResult<'_>) -> String {
    match o {
        Operand::Status => r.status.to_string(),
        Operand::Body => r.body.to_string(),
        Operand::Literal(s) => s.clone(),
    }
}

pub fn eval(e: &Expr, r: &CheckResult<'_>) -> bool {
    match e {
        Expr::Not(x) => !eval(x, r),
        Expr::And(a, b) => eval(a, r) && eval(b, r),
        Expr::Or(a, b) => eval(a, r) || eval(b, r),
        Expr::Match(o, re, negate) => re.is_match(&value(o, r)) != *negate,
        Expr::StrEq(a, b, negate) => (value(a, r) == value(b, r)) != *negate,
        Expr::In(a, list) => {
            let v = value(a, r);
            list.iter().any(|o| value(o, r) == v)
        }
        Expr::NumCmp(a, op, b) => {
            let (Ok(x), Ok(y)) = (value(a, r).parse::<i64>(), value(b, r).parse::<i64>()) else {
                return false;
            };
            match op {
                NumOp::Eq => x == y,
                NumOp::Ne => x != y,
                NumOp::Lt => x < y,
                NumOp::Le => x <= y,
                NumOp::Gt => x > y,
                NumOp::Ge => x >= y,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_table() {
        let cases: &[(&str, u16, &str, bool)] = &[
            ("{%{REQUEST_STATUS} =~ /^[234]/}", 200, "", true),
            ("{%{REQUEST_STATUS} =~ /^[234]/}", 503, "", false),
            ("%{REQUEST_STATUS} -lt 400", 302, "", true),
            ("%{REQUEST_STATUS} -lt 400", 404, "", false),
            ("%{REQUEST_STATUS} in {'200', '204'}", 204, "", true),
            ("%{REQUEST_STATUS} in {'200', '204'}", 201, "", false),
            ("hc('body') !~ /Out of Order/", 200, "all good", true),
            ("hc('body') !~ /Out of Order/", 200, "Out of Order", false),
            (
                "%{REQUEST_STATUS} == '200' && hc('body') =~ /OK/",
                200,
                "OK",
                true,
            ),
            (
                "%{REQUEST_STATUS} == '200' && hc('body') =~ /OK/",
                500,
                "OK",
                false,
            ),
            (
                "!(%{REQUEST_STATUS} -ge 500) || hc('body') =~ /degraded/",
                503,
                "degraded",
                true,
            ),
            (
                "!(%{REQUEST_STATUS} -ge 500) || hc('body') =~ /degraded/",
                503,
                "down",
                false,
            ),
            ("%{REQUEST_STATUS} != '503'", 200, "", true),
        ];
        for (text, status, body, want) in cases {
            let e = parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(
                eval(
                    &e,
                    &CheckResult {
                        status: *status,
                        body
                    }
                ),
                *want,
                "{text} with {status} {body:?}"
            );
        }
    }

    #[test]
    fn unsupported_forms_are_errors() {
        for bad in [
            "%{REMOTE_ADDR} == '1'",
            "hc('headers') =~ /x/",
            "%{REQUEST_STATUS} =~ /unterminated",
            "%{REQUEST_STATUS} ~~ 1",
            "(%{REQUEST_STATUS} -lt 400",
            "%{REQUEST_STATUS} -lt 400 extra",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
