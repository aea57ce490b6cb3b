//! Small syntax checks shared by the rules: regexes, HTTP methods, DNS names,
//! authorities.

/// Why a regex or an authority is not acceptable. The messages are the
/// ones validation reports after the field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyntaxError {
    /// The regex does not parse; `position` is the 0-based character offset
    /// of the problem in the pattern.
    #[error("{} at position {position}", regex_error_kind(.source))]
    RegexSyntax {
        /// Where, in characters.
        position: usize,
        /// The parser's error.
        source: Box<regex_syntax::Error>,
    },
    /// The regex compiles to more than the size limit (in bytes).
    #[error("regex too big (limit {0} bytes)")]
    RegexTooBig(usize),
    /// The regex fails to compile for another reason.
    #[error("{0}")]
    Regex(#[source] regex::Error),
    /// An empty authority.
    #[error("must not be empty")]
    EmptyAuthority,
    /// Not `host` or `host:port`.
    #[error("{0:?} is not a host or host:port")]
    NotAnAuthority(String),
    /// The port is not 1..=65535.
    #[error("{0:?} has an invalid port")]
    InvalidPort(String),
}

/// The kind of a `regex-syntax` error, without its preformatted pattern
/// excerpt.
fn regex_error_kind(error: &regex_syntax::Error) -> String {
    match error {
        regex_syntax::Error::Parse(e) => e.kind().to_string(),
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        other => other.to_string(),
    }
}

/// Checks a path regex; the error names the problem and its position
/// (0-based character offset into the pattern), e.g.
/// `unclosed group at position 7`.
///
/// The position comes from `regex-syntax`, the parser inside the `regex`
/// crate (whose own error is only a preformatted string); the pattern is
/// then compiled with `regex` to catch what only compilation finds (size).
pub fn check_regex(pattern: &str) -> Result<(), SyntaxError> {
    let position = |offset: usize| pattern.get(..offset).map_or(offset, |p| p.chars().count());
    if let Err(source) = regex_syntax::Parser::new().parse(pattern) {
        let offset = match &source {
            regex_syntax::Error::Parse(e) => e.span().start.offset,
            regex_syntax::Error::Translate(e) => e.span().start.offset,
            _ => 0,
        };
        return Err(SyntaxError::RegexSyntax {
            position: position(offset),
            source: Box::new(source),
        });
    }
    regex::Regex::new(pattern).map(|_| ()).map_err(|e| match e {
        regex::Error::CompiledTooBig(limit) => SyntaxError::RegexTooBig(limit),
        other => SyntaxError::Regex(other),
    })
}

/// Whether `method` is an HTTP token (RFC 9110 `tchar`s).
pub fn is_http_token(method: &str) -> bool {
    !method.is_empty()
        && method
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Whether `name` is a DNS-1123 subdomain.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && !name.is_empty() && name.split('.').all(is_dns1123_label)
}

/// Whether `label` is a DNS-1123 label.
pub fn is_dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Splits `host:port`; `None` port when absent. Errors on a bad port.
pub fn split_authority(authority: &str) -> Result<(&str, Option<u16>), SyntaxError> {
    if authority.is_empty() {
        return Err(SyntaxError::EmptyAuthority);
    }
    if authority.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(SyntaxError::NotAnAuthority(authority.to_string()));
    }
    // Bracketed IPv6 `[::1]:80`, bare IPv6 (several colons) has no port.
    let colon = if authority.starts_with('[') {
        authority.find("]:").map(|i| i + 1)
    } else if authority.matches(':').count() == 1 {
        authority.find(':')
    } else {
        None
    };
    match colon {
        None => Ok((authority, None)),
        Some(i) => {
            let (host, port) = (&authority[..i], &authority[i + 1..]);
            match port.parse::<u16>() {
                Ok(p) if p > 0 && !host.is_empty() => Ok((host, Some(p))),
                _ => Err(SyntaxError::InvalidPort(authority.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_positions() {
        assert_eq!(
            check_regex("/books/(\\d+").map_err(|e| e.to_string()),
            Err("unclosed group at position 7".into())
        );
        assert_eq!(
            check_regex("/€/(").map_err(|e| e.to_string()),
            Err("unclosed group at position 3".into())
        );
        assert!(check_regex("/books/\\d+").is_ok());
        assert!(check_regex("a{2,1}").is_err());
    }

    #[test]
    fn tokens_and_names() {
        assert!(is_http_token("PURGE"));
        assert!(!is_http_token("GET POST"));
        assert!(!is_http_token(""));
        assert!(is_dns1123_subdomain("web.default.svc.cluster.local"));
        assert!(!is_dns1123_subdomain("Web.default"));
        assert_eq!(split_authority("a.b:80"), Ok(("a.b", Some(80))));
        assert_eq!(split_authority("a.b"), Ok(("a.b", None)));
        assert!(split_authority("a.b:x").is_err());
    }
}
