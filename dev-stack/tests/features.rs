//! `cargo run -p dev-stack` and `cargo test --workspace` must resolve the same features for every dependency
//! they share, or the test build after a run recompiles much of the tree (see the feature-unification
//! section of `dev-stack/Cargo.toml`). Asks cargo itself (`cargo tree`, offline) for both resolutions.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `package version` → the feature sets cargo resolved for it (a package may appear more than once).
fn resolution(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "tree",
            "--offline",
            "--locked",
            "--prefix",
            "none",
            "-f",
            "{p}|{f}",
        ])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        // Workspace members (their path in the id) are built either way; only dependencies matter.
        if package.contains(" (/") || package.is_empty() {
            continue;
        }
        let package = package.trim_end_matches(" (proc-macro)").to_owned();
        packages
            .entry(package)
            .or_default()
            .insert(features.to_owned());
    }
    packages
}

#[test]
fn dev_stack_and_the_test_build_resolve_the_same_features() {
    let run = resolution(&["-p", "dev-stack", "-e", "normal,build"]);
    let test = resolution(&["--workspace", "-e", "normal,build,dev"]);
    assert!(run.len() > 100, "{} packages", run.len());
    let differing: Vec<String> = run
        .iter()
        .filter_map(|(package, features)| {
            let other = test.get(package)?;
            (other != features).then(|| format!("{package}: run {features:?}, test {other:?}"))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "enable these features in dev-stack/Cargo.toml's unification section:\n{}",
        differing.join("\n")
    );
}
