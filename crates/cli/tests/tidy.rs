//! Tidy: the rules of docs/ARCHITECTURE.md that a machine can check, run by `cargo test`.
//! Every `.rs` file says what it owns (`//!`); the domain stays pure; SQL lives only in the
//! store (and the benchmarks' baselines); no test is ignored; every error code is documented;
//! crates depend only downwards; every dependency's licence permits MIT/Apache-2.0 use.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    rust_files(&root().join("crates"), &mut v);
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

#[test]
fn every_rust_file_says_what_it_owns() {
    let mut missing = Vec::new();
    for f in all_rust_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            missing.push(rel(&f));
        }
    }
    assert!(missing.is_empty(), "files without a `//!` module doc: {missing:?}");
}

#[test]
fn the_domain_crate_stays_pure() {
    let toml = std::fs::read_to_string(root().join("crates/domain/Cargo.toml")).unwrap();
    for banned in ["tokio", "sqlx", "axum", "rusqlite", "postgres", "reqwest", "ronghe-store", "ronghe-server"] {
        assert!(!toml.contains(banned), "crates/domain must not depend on {banned}");
    }
}

#[test]
fn crates_depend_only_downwards() {
    let rules: &[(&str, &[&str])] = &[
        ("crates/store/Cargo.toml", &["ronghe-server", "ronghe-engine", "axum", "clap"]),
        ("crates/engine/Cargo.toml", &["ronghe-store", "ronghe-server", "rusqlite", "postgres", "axum", "tokio"]),
        ("crates/server/Cargo.toml", &["clap", "path = \"../cli\""]),
    ];
    for (file, banned) in rules {
        let toml = std::fs::read_to_string(root().join(file)).unwrap();
        let deps = toml.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
        for b in *banned {
            assert!(!deps.contains(b), "{file} must not depend on {b}");
        }
    }
}

#[test]
fn sql_is_written_only_in_the_store() {
    let words = ["SELECT ", "INSERT INTO", "DELETE FROM", "CREATE TABLE", "ALTER TABLE"];
    let mut offenders = Vec::new();
    for f in all_rust_files() {
        let r = rel(&f);
        if r.starts_with("crates/store/") || r.starts_with("crates/bench/") || r.ends_with("tidy.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if words.iter().any(|w| line.contains(w)) {
                offenders.push(format!("{r}:{}", n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "SQL outside crates/store: {offenders:?}");
}

#[test]
fn no_test_is_ignored() {
    let needle = concat!("#[", "ignore");
    let ignored: Vec<_> = all_rust_files()
        .into_iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(needle))
        .map(|f| rel(&f))
        .collect();
    assert!(ignored.is_empty(), "ignored tests prove nothing: {ignored:?}");
}

#[test]
fn every_error_code_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/errors.md")).unwrap();
    for code in ronghe_domain::Code::ALL {
        assert!(doc.contains(&format!("`{}`", code.as_str())), "docs/errors.md lacks `{}`", code.as_str());
    }
}

/// The target the tests run on: licences of the code that ships here.
const HOST: &str = env!("RONGHE_HOST_TARGET");

/// Licences that allow Ronghe to be used, changed and shipped under MIT or Apache-2.0.
const ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "BSL-1.0",
    "Unlicense",
    "MPL-2.0",
    "CDLA-Permissive-2.0",
];

fn licence_ok(expr: &str) -> bool {
    let expr = expr.replace(['(', ')'], " ").replace('/', " OR ");
    let ok = |term: &str| ALLOWED.contains(&term.trim());
    if expr.contains(" OR ") {
        expr.split(" OR ").any(|alt| alt.split(" AND ").all(ok))
    } else {
        expr.split(" AND ").all(ok)
    }
}

#[test]
fn every_dependency_has_a_compatible_licence() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", HOST])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut bad = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        match p["license"].as_str() {
            Some(l) if licence_ok(l) => {}
            other => bad.push(format!("{name}: {other:?}")),
        }
    }
    assert!(bad.is_empty(), "dependencies whose licence is not known to be compatible: {bad:?}");
    let own = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(own.contains(r#"license = "MIT OR Apache-2.0""#));
    assert!(root().join("LICENSE-MIT").exists() && root().join("LICENSE-APACHE").exists());
}

#[test]
fn licence_expressions_are_read_correctly() {
    assert!(licence_ok("MIT OR Apache-2.0"));
    assert!(licence_ok("(MIT OR Apache-2.0) AND Unicode-3.0"));
    assert!(licence_ok("Apache-2.0/MIT"));
    assert!(!licence_ok("GPL-3.0"));
    assert!(!licence_ok("MIT AND GPL-2.0"));
}
