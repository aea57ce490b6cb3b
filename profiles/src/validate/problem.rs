//! One problem found in a manifest, naming the file, the object and the field.

use std::fmt;

/// Identifies an object: `KIND NS/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObjectId {
    /// `kind` of the object.
    pub kind: String,
    /// `metadata.namespace` (`default` when missing).
    pub namespace: String,
    /// `metadata.name` (may be empty when missing).
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A validation problem, displayed as `FILE: KIND NS/NAME: PATH: MESSAGE`
/// (parts that are unknown are left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, when known.
    pub file: Option<String>,
    /// The object, when known.
    pub object: Option<ObjectId>,
    /// Field path inside the object, e.g. `spec.routes[2].condition.pathRegex`
    /// (empty for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `path` with no file or object attached yet.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            file: None,
            object: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects problems under a path prefix.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::at(path, message));
    }
}

/// `parent.key` (or `key` at the root).
pub(crate) fn field(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
