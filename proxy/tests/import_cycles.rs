//! The proxy's modules import one way: no two files, and no two top-level
//! modules (folders such as `http/` and `balance/`), import each other,
//! directly or around a loop.
//!
//! Imports are read from the source: every `crate::a::b` path (in `use`
//! lines and inline), every `super::` path, and a `mod.rs` file's `use` of
//! its own child modules. Unit tests (`#[cfg(test)] mod tests`) may import
//! anything and are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["balance", "pool"]`) of every source file, by file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read proxy/src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The text of a file without its unit-test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The module a path names: the longest prefix of `path` that is a file.
fn resolve(path: &[String], files: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| files.contains_key(p))
}

/// Identifier path segments following `start` in `text` (`a::b::{c, d}` gives `a, b`).
fn paths_after<'a>(text: &'a str, start: &'a str) -> impl Iterator<Item = Vec<String>> + 'a {
    text.match_indices(start).map(move |(i, _)| {
        let rest = &text[i + start.len()..];
        let mut segs = Vec::new();
        let mut cur = rest;
        loop {
            let end = cur
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(cur.len());
            if end == 0 {
                break;
            }
            segs.push(cur[..end].to_string());
            match cur[end..].strip_prefix("::") {
                Some(next) => cur = next,
                None => break,
            }
        }
        segs
    })
}

fn edges(files: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut graph = BTreeMap::new();
    for (module, path) in files {
        let text = code(path);
        let is_mod_rs = path.ends_with("mod.rs");
        let mut targets = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            targets.extend(resolve(&p, files));
        }
        let parent: Vec<String> = if is_mod_rs {
            module.clone()
        } else {
            module[..module.len().saturating_sub(1)].to_vec()
        };
        for p in paths_after(&text, "super::") {
            let mut full = parent[..parent.len().saturating_sub(usize::from(is_mod_rs))].to_vec();
            full.extend(p);
            targets.extend(resolve(&full, files));
        }
        if is_mod_rs {
            for line in text.lines() {
                let line = line.trim_start();
                let Some(rest) = line
                    .strip_prefix("pub(crate) use ")
                    .or_else(|| line.strip_prefix("use "))
                else {
                    continue;
                };
                if rest.starts_with("crate::") || rest.starts_with("super::") {
                    continue;
                }
                let first = rest.split("::").next().unwrap_or_default();
                let mut child = module.clone();
                child.push(first.to_string());
                targets.extend(resolve(&child, files));
            }
        }
        targets.remove(module);
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        n: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        state: &mut BTreeMap<N, u8>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|x| x == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_file_imports_itself_around_a_loop() {
    let files = modules(&src());
    assert!(files.len() > 20, "read {} files", files.len());
    let graph = edges(&files);
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        panic!("import cycle among files: {}", names.join(" -> "));
    }
}

#[test]
fn no_two_folders_import_each_other() {
    let files = modules(&src());
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in edges(&files) {
        let top = from[0].clone();
        let entry = folders.entry(top.clone()).or_default();
        entry.extend(
            targets
                .into_iter()
                .map(|t| t[0].clone())
                .filter(|t| *t != top),
        );
    }
    if let Some(cycle) = find_cycle(&folders) {
        panic!(
            "import cycle among top-level modules: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    let graph: BTreeMap<u8, BTreeSet<u8>> = [
        (1, BTreeSet::from([2])),
        (2, BTreeSet::from([3])),
        (3, BTreeSet::from([1])),
    ]
    .into();
    assert_eq!(find_cycle(&graph), Some(vec![1, 2, 3, 1]));
    let files = modules(&src());
    let graph = edges(&files);
    let http_forward = vec!["http".to_string(), "forward".to_string()];
    let balance = vec!["balance".to_string()];
    assert!(
        graph
            .get(&http_forward)
            .is_some_and(|t| t.contains(&balance)),
        "http::forward imports balance: the reader must see it"
    );
}
