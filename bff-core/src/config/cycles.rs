//! A test that keeps the configuration out of import cycles: it lists the `crate::` / `super::` edges between
//! bff-core's modules (one module per file, inline test modules left out) and checks that `config` is in no cycle, so a
//! section module (`*/config.rs`) never depends on the code that runs the gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`cache::config`) → source (up to its first `#[cfg(test)]`).
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("readable source dir")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let source = std::fs::read_to_string(&path).expect("readable source");
            out.insert(parts.join("::"), without_test_modules(&source).to_owned());
        }
    }
    out
}

/// `source` up to its first inline test module (`#[cfg(test)]` then `mod name {`).
fn without_test_modules(source: &str) -> &str {
    let mut from = 0;
    while let Some(i) = source[from..].find("#[cfg(test)]") {
        let at = from + i;
        let after = &source[at..];
        let brace = after.find('{');
        if brace.is_some_and(|b| after[..b].contains("mod ") && !after[..b].contains(';')) {
            return &source[..at];
        }
        from = at + 1;
    }
    source
}

/// The module a path such as `cache::config::CacheConfig` names: its longest prefix that is a module.
fn resolve<'a>(mods: &'a BTreeMap<String, String>, path: &str) -> Option<&'a str> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        if let Some((k, _)) = mods.get_key_value(&parts.join("::")) {
            return Some(k.as_str());
        }
        parts.pop();
    }
    None
}

/// The paths following `prefix` in `source` (`crate::a::b` → `a::b`).
fn paths_after<'s>(source: &'s str, prefix: &str) -> Vec<&'s str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find(prefix) {
        let preceded = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[i + prefix.len()..];
        if preceded {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        out.push(rest[..end].trim_end_matches(':'));
    }
    out
}

/// Module → the modules it uses (its own ancestors left out).
fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut out = BTreeMap::new();
    for (m, source) in mods {
        let parent: Vec<&str> = m.split("::").collect();
        let parent = parent[..parent.len().saturating_sub(1)].join("::");
        let mut targets = BTreeSet::new();
        let crate_paths = paths_after(source, "crate::")
            .into_iter()
            .map(str::to_owned);
        let super_paths = paths_after(source, "super::").into_iter().map(|p| {
            if parent.is_empty() {
                p.to_owned()
            } else {
                format!("{parent}::{p}")
            }
        });
        for path in crate_paths.chain(super_paths) {
            if let Some(t) = resolve(mods, &path)
                && t != m
                && !m.starts_with(&format!("{t}::"))
                && !t.is_empty()
            {
                targets.insert(t);
            }
        }
        out.insert(m.as_str(), targets);
    }
    out
}

/// Every module reachable from `from`.
fn reachable<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>, from: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from];
    while let Some(m) = todo.pop() {
        for &t in edges.get(m).into_iter().flatten() {
            if seen.insert(t) {
                todo.push(t);
            }
        }
    }
    seen
}

/// `config` reaches no module that reaches it back: the section types and checks depend only on each other
/// and on leaves (`config::error`), never on the running gateway.
#[test]
fn config_is_in_no_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    let edges = edges(&mods);
    assert!(
        edges["config"].contains("auth::config"),
        "edges are read: {:?}",
        edges["config"]
    );
    let cycle: Vec<&str> = reachable(&edges, "config")
        .into_iter()
        .filter(|m| *m == "config" || reachable(&edges, m).contains("config"))
        .collect();
    assert!(
        cycle.is_empty(),
        "config is in an import cycle with {cycle:?}"
    );
}
