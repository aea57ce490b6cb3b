//! The repository's Dockerfile, checked without a Docker engine: its
//! stages and targets, documented build arguments, the non-root users and
//! entrypoints docs/kubernetes.md promises, that every COPY source exists
//! (in the build context or in a named earlier stage), and that the
//! binaries it copies are ones the workspace builds.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One instruction: keyword (upper case), arguments, and the comment
/// lines right above it.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
    comment: String,
}

/// Parses a Dockerfile: comments, blank lines, `\` continuations.
fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut comment = String::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_none() {
            if trimmed.starts_with('#') {
                comment.push_str(trimmed.trim_start_matches('#').trim());
                comment.push('\n');
                continue;
            }
            if trimmed.is_empty() {
                comment.clear();
                continue;
            }
        } else if trimmed.starts_with('#') {
            continue; // comments inside a continued instruction
        }
        let joined = current.take().unwrap_or_default() + " " + trimmed;
        if let Some(rest) = joined.strip_suffix('\\') {
            current = Some(rest.to_string());
            continue;
        }
        let joined = joined.trim().to_string();
        let (keyword, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
            comment: std::mem::take(&mut comment),
        });
    }
    assert!(
        current.is_none(),
        "the Dockerfile ends inside a continuation"
    );
    out
}

/// A stage: its base, its name, and its instructions.
#[derive(Debug)]
struct Stage {
    base: String,
    name: String,
    body: Vec<Instruction>,
}

fn stages(instructions: &[Instruction]) -> (Vec<Instruction>, Vec<Stage>) {
    let mut global = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions {
        if i.keyword == "FROM" {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let (base, name) = match words.as_slice() {
                [base] => (*base, ""),
                [base, as_, name] if as_.eq_ignore_ascii_case("as") => (*base, *name),
                other => panic!("unexpected FROM {other:?}"),
            };
            stages.push(Stage {
                base: base.to_string(),
                name: name.to_string(),
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(i.clone());
        } else {
            global.push(i.clone());
        }
    }
    (global, stages)
}

fn dockerfile() -> (Vec<Instruction>, Vec<Stage>) {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    stages(&parse(&text))
}

/// `[[bin]]` names (or the package name) of the workspace members.
fn workspace_bins() -> BTreeMap<String, BTreeSet<String>> {
    let root: toml_lite::Doc = toml_lite::read(&repo().join("Cargo.toml"));
    let mut bins = BTreeMap::new();
    for member in root.array("workspace", "members") {
        let manifest = toml_lite::read(&repo().join(&member).join("Cargo.toml"));
        let package = manifest.string("package", "name").unwrap();
        let mut names: BTreeSet<String> = manifest.bin_names().into_iter().collect();
        if names.is_empty() && repo().join(&member).join("src/main.rs").exists() {
            names.insert(package.clone());
        }
        bins.insert(package, names);
    }
    bins
}

/// Just enough TOML reading for Cargo manifests (tables, `key = "x"`,
/// `key = [..]` on one or several lines, `[[bin]]` name).
mod toml_lite {
    use std::path::Path;

    pub struct Doc {
        /// (table, key, raw value)
        entries: Vec<(String, String, String)>,
    }

    pub fn read(path: &Path) -> Doc {
        let text = std::fs::read_to_string(path).unwrap();
        let mut entries = Vec::new();
        let mut table = String::new();
        let mut pending: Option<(String, String)> = None;
        for line in text.lines() {
            let line = line.split(" #").next().unwrap().trim();
            if let Some((key, mut value)) = pending.take() {
                value.push_str(line);
                if line.contains(']') {
                    entries.push((table.clone(), key, value));
                } else {
                    pending = Some((key, value));
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                table = line.trim_matches(|c| c == '[' || c == ']').to_string();
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                let (key, value) = (key.trim().to_string(), value.trim().to_string());
                if value.starts_with('[') && !value.contains(']') {
                    pending = Some((key, value));
                } else {
                    entries.push((table.clone(), key, value));
                }
            }
        }
        Doc { entries }
    }

    impl Doc {
        pub fn string(&self, table: &str, key: &str) -> Option<String> {
            self.entries
                .iter()
                .find(|(t, k, _)| t == table && k == key)
                .map(|(_, _, v)| v.trim_matches('"').to_string())
        }

        pub fn array(&self, table: &str, key: &str) -> Vec<String> {
            let raw = self
                .entries
                .iter()
                .find(|(t, k, _)| t == table && k == key)
                .map(|(_, _, v)| v.clone())
                .unwrap_or_default();
            raw.trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }

        pub fn bin_names(&self) -> Vec<String> {
            self.entries
                .iter()
                .filter(|(t, k, _)| t == "bin" && k == "name")
                .map(|(_, _, v)| v.trim_matches('"').to_string())
                .collect()
        }
    }
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn last<'a>(stage: &'a Stage, keyword: &str) -> &'a str {
    &stage
        .body
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .unwrap_or_else(|| panic!("stage {} has no {keyword}", stage.name))
        .args
}

/// A `USER` value names a non-root numeric user (and group).
fn non_root(user: &str) -> u32 {
    let uid: u32 =
        user.split(':').next().unwrap().parse().unwrap_or_else(|_| {
            panic!("USER {user}: use a numeric uid so runAsNonRoot can verify it")
        });
    assert_ne!(uid, 0, "USER {user} is root");
    uid
}

#[test]
fn build_arguments_are_declared_and_documented() {
    let (global, stages) = dockerfile();
    let args: BTreeMap<String, &Instruction> = global
        .iter()
        .filter(|i| i.keyword == "ARG")
        .map(|i| (i.args.split('=').next().unwrap().to_string(), i))
        .collect();
    for name in ["RUST_VERSION", "DEBIAN_RELEASE", "PROFILE"] {
        let arg = args.get(name).unwrap_or_else(|| panic!("no ARG {name}"));
        assert!(arg.args.contains('='), "ARG {name} has no default");
        assert!(
            !arg.comment.trim().is_empty(),
            "ARG {name} is not documented"
        );
    }
    // Every ${VAR} in a FROM is a global ARG; stage-level uses re-declare.
    for s in &stages {
        for var in s.base.split("${").skip(1) {
            let var = var.split('}').next().unwrap();
            assert!(args.contains_key(var), "FROM uses undeclared {var}");
        }
    }
    let build = stage(&stages, "build");
    assert!(build
        .body
        .iter()
        .any(|i| i.keyword == "ARG" && i.args == "PROFILE"));
}

#[test]
fn targets_users_and_entrypoints_match_the_docs() {
    let (_, stages) = dockerfile();
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    for target in ["build", "proxy", "init", "controller"] {
        assert!(names.contains(&target), "no target {target}: {names:?}");
    }
    let proxy = stage(&stages, "proxy");
    assert_eq!(non_root(last(proxy, "USER")), 2102);
    assert_eq!(
        last(proxy, "ENTRYPOINT"),
        r#"["/usr/local/bin/wisp-proxy"]"#
    );
    let init = stage(&stages, "init");
    non_root(last(init, "USER"));
    assert_eq!(last(init, "ENTRYPOINT"), r#"["/usr/local/bin/wisp-init"]"#);
    let run = last(init, "RUN");
    assert!(
        run.contains("apt-get install") && run.contains("iptables"),
        "{run}"
    );
    assert!(
        run.contains("xtables-legacy-multi") && run.contains("xtables-nft-multi"),
        "both iptables back ends get capabilities: {run}"
    );
    let controller = stage(&stages, "controller");
    // The chart's controller.uid.
    assert_eq!(non_root(last(controller, "USER")), 2103);
    assert_eq!(
        last(controller, "ENTRYPOINT"),
        r#"["/usr/local/bin/wisp", "controller"]"#
    );
}

#[test]
fn the_builder_builds_the_workspace_binaries_the_images_copy() {
    let (_, stages) = dockerfile();
    let bins = workspace_bins();
    let build = stage(&stages, "build");
    let run = last(build, "RUN");
    assert!(
        run.contains("cargo build") && run.contains("--locked"),
        "{run}"
    );
    let mut built = BTreeSet::new();
    let words: Vec<&str> = run.split_whitespace().collect();
    // The `cargo build ...` command, up to the next `&&`.
    let cargo: Vec<&str> = words
        .iter()
        .skip_while(|w| **w != "cargo")
        .take_while(|w| **w != "&&")
        .copied()
        .collect();
    for pair in cargo.windows(2) {
        if pair[0] == "-p" {
            let names = bins
                .get(pair[1])
                .unwrap_or_else(|| panic!("-p {}: not a workspace package", pair[1]));
            built.extend(names.iter().cloned());
        }
    }
    for package in ["wisp-proxy", "wisp-init", "wisp-cli"] {
        assert!(
            run.contains(&format!("-p {package}")),
            "{package} not built"
        );
    }
    // What the builder puts into /out is built, and every binary a
    // runtime stage copies from the builder is in /out.
    let staged: BTreeSet<String> = words
        .iter()
        .filter_map(|w| w.trim_matches('"').strip_prefix("target/${dir}/"))
        .map(str::to_string)
        .collect();
    assert!(!staged.is_empty());
    for bin in &staged {
        assert!(
            built.contains(bin),
            "{bin} is copied but not built ({built:?})"
        );
    }
    for s in &stages {
        for copy in s.body.iter().filter(|i| i.keyword == "COPY") {
            let Some(rest) = copy.args.strip_prefix("--from=build ") else {
                continue;
            };
            let source = rest.split_whitespace().next().unwrap();
            let bin = source.strip_prefix("/out/").expect("copies from /out");
            assert!(staged.contains(bin), "stage {} copies {bin}", s.name);
        }
    }
    // The documented image layout.
    let copied = |stage_name: &str| -> Vec<String> {
        stage(&stages, stage_name)
            .body
            .iter()
            .filter(|i| i.keyword == "COPY")
            .map(|i| i.args.split_whitespace().last().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        copied("proxy"),
        ["/usr/local/bin/wisp-proxy", "/usr/local/bin/wisp-await"]
    );
    assert_eq!(copied("init"), ["/usr/local/bin/wisp-init"]);
    assert_eq!(copied("controller"), ["/usr/local/bin/wisp"]);
}

#[test]
fn copy_sources_exist_and_stages_refer_backwards() {
    let (_, stages) = dockerfile();
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        ignored.contains(&"target/"),
        "the build context skips target/"
    );
    for needed in ["Cargo.lock", "charts", "Cargo.toml"] {
        assert!(
            !ignored.iter().any(|p| p.trim_end_matches('/') == needed),
            ".dockerignore must keep {needed}"
        );
    }
    let mut earlier: Vec<&str> = Vec::new();
    for s in &stages {
        if !s.base.contains(['/', ':', '$']) {
            assert!(
                earlier.contains(&s.base.as_str()),
                "FROM {} is no earlier stage",
                s.base
            );
        }
        for copy in s.body.iter().filter(|i| i.keyword == "COPY") {
            let words: Vec<&str> = copy.args.split_whitespace().collect();
            let from = words.iter().find_map(|w| w.strip_prefix("--from="));
            let sources: Vec<&str> = words
                .iter()
                .filter(|w| !w.starts_with("--"))
                .copied()
                .collect();
            let sources = &sources[..sources.len() - 1];
            match from {
                Some(stage) => assert!(
                    earlier.contains(&stage),
                    "stage {}: COPY --from={stage} is no earlier stage",
                    s.name
                ),
                None => {
                    for src in sources {
                        assert!(repo().join(src).exists(), "COPY source {src} is missing");
                    }
                }
            }
        }
        earlier.push(&s.name);
    }
}
