//! Routes from a `.proto` file: a small parser for `package`, `service` and
//! `rpc` (comments, messages and options skipped; no protoc needed).

use super::{profile_with_routes, GenerateError};
use crate::types::{RequestMatch, RouteSpec, ServiceProfile};

/// One rpc found in a `.proto` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoRpc {
    /// gRPC path `/<package>.<Service>/<Method>` (`/<Service>/<Method>`
    /// without a package).
    pub path: String,
    /// Whether `idempotency_level` is `IDEMPOTENT` or `NO_SIDE_EFFECTS`.
    pub idempotent: bool,
}

/// One `POST /<package>.<Service>/<Method>` route per rpc, named the same,
/// with the anchored, escaped path as `pathRegex`; idempotent rpcs are
/// retryable. Routes keep the file's order.
pub fn from_proto(
    text: &str,
    service: &str,
    namespace: &str,
    cluster_domain: &str,
) -> Result<ServiceProfile, GenerateError> {
    let routes = parse_rpcs(text)?
        .into_iter()
        .map(|rpc| RouteSpec {
            name: format!("POST {}", rpc.path),
            condition: RequestMatch {
                path_regex: Some(format!("^{}$", regex::escape(&rpc.path))),
                method: Some("POST".into()),
                ..Default::default()
            },
            is_retryable: rpc.idempotent,
            ..Default::default()
        })
        .collect();
    Ok(profile_with_routes(
        service,
        namespace,
        cluster_domain,
        routes,
    ))
}

/// Every rpc of every service in the file.
pub fn parse_rpcs(text: &str) -> Result<Vec<ProtoRpc>, GenerateError> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, pos: 0 };
    let mut package = String::new();
    let mut rpcs = Vec::new();
    while let Some(tok) = p.next() {
        match tok.text.as_str() {
            "package" => {
                package = p.expect_name("package name")?;
                p.expect(";")?;
            }
            "service" => {
                let name = p.expect_name("service name")?;
                p.expect("{")?;
                let prefix = if package.is_empty() {
                    name
                } else {
                    format!("{package}.{name}")
                };
                p.service_body(&prefix, &mut rpcs)?;
            }
            "{" => p.skip_block()?,
            _ => {}
        }
    }
    Ok(rpcs)
}

#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, GenerateError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err(GenerateError::Proto {
                        line: start,
                        message: "unterminated comment".into(),
                    });
                }
            }
            '"' | '\'' => {
                let mut s = String::from(c);
                let mut closed = false;
                while let Some(d) = chars.next() {
                    s.push(d);
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            s.push(e);
                        }
                    } else if d == c {
                        closed = true;
                        break;
                    } else if d == '\n' {
                        break;
                    }
                }
                if !closed {
                    return Err(GenerateError::Proto {
                        line,
                        message: "unterminated string".into(),
                    });
                }
                tokens.push(Token { text: s, line });
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut s = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '.' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token { text: s, line });
            }
            other => tokens.push(Token {
                text: other.to_string(),
                line,
            }),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.pos);
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(|t| t.text.as_str())
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos.saturating_sub(1))
            .or_else(|| self.tokens.last())
            .map_or(1, |t| t.line)
    }

    fn error(&self, message: String) -> GenerateError {
        GenerateError::Proto {
            line: self.line(),
            message,
        }
    }

    fn expect(&mut self, want: &str) -> Result<(), GenerateError> {
        match self.next().map(|t| t.text.clone()) {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(self.error(format!("expected {want:?}, found {t:?}"))),
            None => Err(self.error(format!("expected {want:?}, found end of file"))),
        }
    }

    fn expect_name(&mut self, what: &str) -> Result<String, GenerateError> {
        match self.next().map(|t| t.text.clone()) {
            Some(t)
                if t.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
            {
                Ok(t)
            }
            Some(t) => Err(self.error(format!("expected {what}, found {t:?}"))),
            None => Err(self.error(format!("expected {what}, found end of file"))),
        }
    }

    /// Skips to the `}` closing a block whose `{` was just read.
    fn skip_block(&mut self) -> Result<(), GenerateError> {
        let mut depth = 1;
        while depth > 0 {
            match self.next().map(|t| t.text.as_str()) {
                Some("{") => depth += 1,
                Some("}") => depth -= 1,
                Some(_) => {}
                None => return Err(self.error("unclosed `{`".into())),
            }
        }
        Ok(())
    }

    fn service_body(
        &mut self,
        prefix: &str,
        rpcs: &mut Vec<ProtoRpc>,
    ) -> Result<(), GenerateError> {
        loop {
            let Some(tok) = self.next().map(|t| t.text.clone()) else {
                return Err(self.error(format!("service {prefix} is not closed")));
            };
            match tok.as_str() {
                "}" => return Ok(()),
                "{" => self.skip_block()?,
                "rpc" => {
                    let method = self.expect_name("rpc name")?;
                    self.message_type()?;
                    self.expect("returns")?;
                    self.message_type()?;
                    let idempotent = match self.peek() {
                        Some("{") => {
                            self.next();
                            self.rpc_options()?
                        }
                        _ => {
                            self.expect(";")?;
                            false
                        }
                    };
                    rpcs.push(ProtoRpc {
                        path: format!("/{prefix}/{method}"),
                        idempotent,
                    });
                }
                _ => {}
            }
        }
    }

    /// `( [stream] Type )`.
    fn message_type(&mut self) -> Result<(), GenerateError> {
        self.expect("(")?;
        if self.peek() == Some("stream") {
            self.next();
        }
        self.expect_name("message type")?;
        self.expect(")")
    }

    /// The body of `rpc … { option …; }`; true if it declares idempotency.
    fn rpc_options(&mut self) -> Result<bool, GenerateError> {
        let mut depth = 1;
        let mut idempotent = false;
        let mut previous: Vec<String> = Vec::new();
        while depth > 0 {
            let Some(tok) = self.next().map(|t| t.text.clone()) else {
                return Err(self.error("rpc options are not closed".into()));
            };
            match tok.as_str() {
                "{" => depth += 1,
                "}" => depth -= 1,
                "IDEMPOTENT" | "NO_SIDE_EFFECTS"
                    if previous.len() >= 2
                        && previous[previous.len() - 1] == "="
                        && previous[previous.len() - 2] == "idempotency_level" =>
                {
                    idempotent = true;
                }
                _ => {}
            }
            previous.push(tok);
        }
        Ok(idempotent)
    }
}
