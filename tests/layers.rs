//! The house's rule, checked: imports point down only, and no two files import
//! each other. Each top-level module has a floor; a file may name modules on
//! its own floor's folder or below, never above (README "Layout").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Floors, lowest first: a module may import its own and lower floors.
const FLOORS: [(&str, usize); 12] = [
    ("linalg", 0),
    ("util", 0),
    ("data", 1),
    ("folder", 1),
    ("nn", 2),
    ("train", 3),
    ("sweep", 4),
    ("report", 5),
    ("ui", 5),
    ("pipeline", 6),
    ("app", 7),
    ("main", 8),
];

fn floor(module: &str) -> usize {
    FLOORS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("module {module} has no floor in tests/layers.rs: give it one"))
        .1
}

/// (top module, file module) of a source file: `sweep/runner.rs` -> (sweep, runner).
fn module_of(rel: &Path) -> (String, String) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [file] => (file.clone(), String::new()),
        [top, file] => (
            top.clone(),
            if file == "mod" {
                String::new()
            } else {
                file.clone()
            },
        ),
        _ => panic!("unexpected source layout: {}", rel.display()),
    }
}

/// The modules a file's code names: `crate::top::file` and `super::file`, and
/// `shallow::top` in main.rs. Comments are skipped.
fn imports(text: &str, top: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (prefix, own) in [("crate::", false), ("shallow::", false), ("super::", true)] {
            let mut rest = code;
            while let Some(k) = rest.find(prefix) {
                let after = &rest[k + prefix.len()..];
                let name: Vec<&str> = after
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")
                    .split("::")
                    .collect();
                if own {
                    if let Some(f) = name.first().filter(|f| !f.is_empty()) {
                        out.insert((top.to_string(), f.to_string()));
                    }
                } else if let Some(t) = name.first().filter(|t| !t.is_empty()) {
                    let sub = name.get(1).copied().unwrap_or("").to_string();
                    out.insert((t.to_string(), sub));
                }
                rest = after;
            }
        }
    }
    out
}

#[test]
fn imports_point_down_and_no_two_files_import_each_other() {
    let mut files: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for (rel, text) in sources() {
        if rel == "lib.rs" {
            continue; // declares the modules
        }
        let (top, file) = module_of(Path::new(&rel));
        // Tests inside a file may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        files.insert((top.clone(), file), imports(code, &top));
    }
    let mut wrong = Vec::new();
    for ((top, file), uses) in &files {
        for (t, f) in uses {
            if !FLOORS.iter().any(|(m, _)| m == t) {
                continue; // a crate's item, e.g. crate::outln!
            }
            if floor(t) > floor(top) {
                wrong.push(format!("{top}/{file} imports {t} above it"));
            }
            let back = files
                .get(&(t.clone(), f.clone()))
                .is_some_and(|u| u.contains(&(top.clone(), file.clone())));
            if (t, f) != (top, file) && !f.is_empty() && !file.is_empty() && back {
                wrong.push(format!("{top}/{file} and {t}/{f} import each other"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Most lines a function in `src/` may have (signature to closing brace).
const MAX_FUNCTION_LINES: usize = 120;

/// Functions allowed past it: a parser's one `match` over its opcodes, the
/// idiom for a decoder (`data/pickle.rs`).
const LONG_PARSERS: [&str; 1] = ["data/pickle.rs unpickle"];

/// Every source file under `src/`, with its path relative to it.
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&src).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// (name, first line, length) of each function in `text`: from its `fn` line
/// to the closing brace at the same indentation (as `cargo fmt` writes it).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let after = [
            "pub fn ",
            "pub(crate) fn ",
            "fn ",
            "pub const fn ",
            "const fn ",
        ]
        .iter()
        .find_map(|p| code.strip_prefix(p));
        let Some(after) = after else { continue };
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            out.push((name, i + 1, end + 1));
        }
    }
    out
}

/// nanoGPT's and llm.c's rule of thumb: a function is read in one screenful
/// or two. A refactor that leaves a long function fails here.
#[test]
fn no_function_is_longer_than_120_lines() {
    let mut long = Vec::new();
    for (path, text) in sources() {
        for (name, line, len) in functions(&text) {
            let key = format!("{path} {name}");
            if len > MAX_FUNCTION_LINES && !LONG_PARSERS.contains(&key.as_str()) {
                long.push(format!("src/{path}:{line} {name}: {len} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (cut them into named steps):\n{}",
        long.join("\n")
    );
}

/// The measure itself: a function's lines run from `fn` to its brace.
#[test]
fn function_lengths_are_measured_from_fn_to_its_brace() {
    let text = "fn a() {\n    x;\n}\n\nimpl B {\n    pub fn c(\n        d: u8,\n    ) {\n        e;\n    }\n}\n";
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 1, 3), ("c".to_string(), 6, 5)]
    );
}
