//! Diagnostics on stderr, plain or JSON lines (`--log-level`, `--log-format`).
//! stdout is kept for `--dry-run` output.

use std::io::Write as _;

/// How much to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// What was done (default).
    Info,
    /// Also the rule text applied.
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// `wisp-init: <level>: <message>`.
    Plain,
    /// `{"level":"...","msg":"..."}`.
    Json,
}

/// Writes diagnostics at or above a level.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Log {
    /// The most detailed level written.
    pub(crate) level: Level,
    /// The line format.
    pub(crate) format: Format,
}

impl Log {
    /// The text of one line (without the newline).
    fn line(&self, level: Level, msg: &str) -> String {
        match self.format {
            Format::Plain => format!("wisp-init: {}: {msg}", level.name()),
            Format::Json => serde_json::json!({"level": level.name(), "msg": msg}).to_string(),
        }
    }

    /// Writes `msg` at `level` if enabled; stderr errors are ignored.
    pub(crate) fn write(&self, level: Level, msg: &str) {
        if level <= self.level {
            let _ = writeln!(std::io::stderr(), "{}", self.line(level, msg));
        }
    }

    /// [`Log::write`] at error level.
    pub(crate) fn error(&self, msg: &str) {
        self.write(Level::Error, msg);
    }

    /// [`Log::write`] at warn level.
    pub(crate) fn warn(&self, msg: &str) {
        self.write(Level::Warn, msg);
    }

    /// [`Log::write`] at info level.
    pub(crate) fn info(&self, msg: &str) {
        self.write(Level::Info, msg);
    }

    /// [`Log::write`] at debug level.
    pub(crate) fn debug(&self, msg: &str) {
        self.write(Level::Debug, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let plain = Log {
            level: Level::Info,
            format: Format::Plain,
        };
        assert_eq!(plain.line(Level::Warn, "x"), "wisp-init: warn: x");
        let json = Log {
            level: Level::Info,
            format: Format::Json,
        };
        assert_eq!(
            json.line(Level::Error, "a \"b\""),
            r#"{"level":"error","msg":"a \"b\""}"#
        );
        assert!(Level::Debug > Level::Info && Level::Warn > Level::Error);
    }
}
