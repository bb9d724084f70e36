//! The shape the code keeps (issue #19): no module imports a module that
//! imports it back, directly or through others, and no file holds more
//! than about 600 lines of code before its tests. Read from src/ as text,
//! so a failure names the files to look at.
//!
//! A module depends on another when its code (tests left out) names it:
//! `crate::a::b`, `super::x`, or, in a parent, `child::item`. A parent's
//! `mod child;` is not a dependency, so the pattern that passes is a
//! mod.rs that declares and re-exports only what no child takes back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Non-test lines a file may hold: "about 600" with a little slack.
const MAX_CODE_LINES: usize = 650;

type Module = Vec<String>;

fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut m: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                m.pop();
            }
            out.insert(m, path);
        }
    }
    out
}

/// The text without the unit tests' module (`#[cfg(test)] mod ... {`
/// up to its closing `}` at the start of a line): code after it counts.
fn before_tests(text: &str) -> String {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let declared = after.lines().next().is_some_and(|l| l.ends_with(';'));
        if after.starts_with("mod ") && !declared {
            let end = text[at..]
                .find("\n}\n")
                .map_or(text.len(), |e| at + e + "\n}\n".len());
            return format!("{}{}", &text[..at], &text[end..]);
        }
        from = at + 1;
    }
    text.to_string()
}

/// The code before the unit tests, without line comments.
fn code(text: &str) -> String {
    before_tests(text)
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is rare in paths that matter;
            // cutting there only drops text after it.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The path segments starting at `s` (`a::b::{c, d::e}` gives each
/// path the group spells out).
fn paths_at(s: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(rest[..end].to_string());
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix("::") {
            rest = r;
            if let Some(group) = rest.strip_prefix('{') {
                let close = group.find('}').unwrap_or(group.len());
                let mut out = vec![segs.clone()];
                for part in group[..close].split(',') {
                    let part = part.split(" as ").next().unwrap_or_default().trim();
                    for tail in paths_at(part) {
                        let mut p = segs.clone();
                        p.extend(tail);
                        out.push(p);
                    }
                }
                return out;
            }
        } else {
            break;
        }
    }
    vec![segs]
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains_key(m))
}

/// Occurrences of `word` not preceded by an identifier character or `::`.
fn starts_of<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = &text[..at];
        let free = !before.ends_with(is_ident) && !before.ends_with("::");
        if free {
            out.push(&text[at + word.len()..]);
        }
        from = at + word.len();
    }
    out
}

fn dependencies(known: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut deps = BTreeMap::new();
    for (m, path) in known {
        let text = code(&std::fs::read_to_string(path).unwrap());
        let mut d = BTreeSet::new();
        for after in starts_of(&text, "crate::") {
            for p in paths_at(after) {
                d.extend(resolve(&p, known));
            }
        }
        for after in starts_of(&text, "super::") {
            let mut ups = 1;
            let mut rest = after;
            while let Some(r) = rest.strip_prefix("super::") {
                ups += 1;
                rest = r;
            }
            let base = m[..m.len().saturating_sub(ups)].to_vec();
            for tail in paths_at(rest) {
                let mut p = base.clone();
                p.extend(tail);
                d.extend(resolve(&p, known));
            }
        }
        // A parent naming its child's items (`child::x`, `self::child::x`).
        for child in known
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
        {
            let name = format!("{}::", child.last().unwrap());
            if !starts_of(&text, &name).is_empty() || text.contains(&format!("self::{name}")) {
                d.insert(child.clone());
            }
        }
        d.remove(m);
        deps.insert(m.clone(), d);
    }
    deps
}

/// Groups of modules that reach each other (Tarjan), larger than one.
fn cycles(deps: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        deps: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.deps[v] {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        deps,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in deps.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let known = modules(&src());
    let deps = dependencies(&known);
    let found = cycles(&deps);
    let report: Vec<String> = found
        .iter()
        .map(|group| {
            let members: BTreeSet<&Module> = group.iter().collect();
            let edges: Vec<String> = group
                .iter()
                .map(|m| {
                    let to: Vec<String> = deps[m]
                        .iter()
                        .filter(|d| members.contains(d))
                        .map(name)
                        .collect();
                    format!("  {} -> {}", name(m), to.join(", "))
                })
                .collect();
            edges.join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles (each group's modules reach each other):\n{}",
        report.join("\n\n")
    );
}

#[test]
fn the_scanner_sees_a_cycle_through_a_parent() {
    // The test above must be able to fail: a parent that names its child's
    // item while the child takes one back through `super::` is a cycle.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "pub mod a;\n").unwrap();
    std::fs::write(
        dir.path().join("a/mod.rs"),
        "pub mod b;\npub use b::Thing;\npub struct Other;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a/b.rs"),
        "use super::Other;\npub struct Thing(Other);\n#[cfg(test)]\nuse crate::nothing;\n",
    )
    .unwrap();
    let known = modules(dir.path());
    let found = cycles(&dependencies(&known));
    assert_eq!(found.len(), 1, "{found:?}");
    // Siblings through their own paths are no cycle.
    std::fs::write(
        dir.path().join("a/mod.rs"),
        "pub mod b;\npub mod c;\npub use b::Thing;\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a/c.rs"), "pub struct Other;\n").unwrap();
    std::fs::write(
        dir.path().join("a/b.rs"),
        "use super::c::Other;\npub struct Thing(Other);\n",
    )
    .unwrap();
    let known = modules(dir.path());
    assert!(cycles(&dependencies(&known)).is_empty());
}

#[test]
fn no_file_holds_more_than_about_600_lines_of_code() {
    let mut over = Vec::new();
    for path in modules(&src()).values() {
        let text = std::fs::read_to_string(path).unwrap();
        let lines = before_tests(&text).lines().count();
        if lines > MAX_CODE_LINES {
            over.push(format!(
                "{} ({lines} lines before its tests)",
                path.display()
            ));
        }
    }
    assert!(
        over.is_empty(),
        "split these into files of one concept each:\n{}",
        over.join("\n")
    );
}

#[test]
fn code_after_the_tests_module_counts() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod tests {\n    fn t() {\n    }\n}\nfn b() {}\nfn c() {}\n";
    assert_eq!(
        before_tests(text),
        "fn a() {}\n#[cfg(test)]\nmod tests;\nfn b() {}\nfn c() {}\n"
    );
}
