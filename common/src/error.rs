//! One line for an error and its causes, `outer: inner: innermost`, each
//! message once (a wrapper that repeats its source's text adds nothing).
//! Used wherever an error reaches a person: logs, `l5d-proxy-error`, and
//! the binaries' exit messages (which never print a backtrace).

use std::error::Error;

/// `error: cause: cause ...` for `error` and its `source()` chain.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        causes.push(e);
        next = e.source();
    }
    chain_of(causes.into_iter())
}

/// The same line for an already collected chain of causes (e.g.
/// `anyhow::Error::chain()`), outermost first.
pub fn chain_of<'a>(causes: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in causes {
        let message = cause.to_string();
        if line.ends_with(&message) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&message);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connect to 10.0.0.1:80 failed")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn spells_out_every_cause_once() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            chain(&e),
            "connect to 10.0.0.1:80 failed: connection refused"
        );
        let e = Repeats(std::io::Error::other("connection refused"));
        assert_eq!(chain(&e), "connection refused");
    }
}
