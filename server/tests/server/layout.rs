//! The module layout DESIGN.md describes, checked on the sources: no two files of `server/src`
//! or `client/src` import each other (directly or through a chain), only `store/` speaks SQL,
//! only the HTTP edge (`http/`, `console/`) speaks axum, the pure rooms (`domain`, `engine`,
//! `reputation`, `serving/render`, `serving/entry`, `feeds/parse`) reach for no runtime, database, HTTP or
//! network crate and import nothing but each other, and the use cases (`lookup`, `distribution`,
//! `manage`) know neither HTTP nor SQL. Each tolerated exception is listed below with its reason.
//!
//! An import is any path a file names: `use` items (groups and globs expanded) and paths written
//! inline in code (`crate::a::b`, `super::c`, `self::d`, or a child module declared with
//! `mod`). Each is resolved to the file that defines the module it reaches, so a `mod foo;`
//! declaration alone is not an import, but a parent that uses its child's items while the child
//! uses the parent's is a cycle like any other. Comments and string literals are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles tolerated for now, each a set of files (relative to the crate's `src/`) and the reason.
const CYCLE_EXCEPTIONS: &[(&[&str], &str)] = &[];

/// Files outside `store/` that may name `sqlx`, and why.
const SQLX_EXCEPTIONS: &[(&str, &str)] =
    &[("testing.rs", "creates and drops the per-test PostgreSQL databases, which no Store method does")];

/// Files outside `http/` and `console/` that may name `axum`, and why.
const AXUM_EXCEPTIONS: &[(&str, &str)] = &[
    ("error.rs", "ApiError's one conversion into a response (IntoResponse)"),
    ("cli/serve.rs", "the top-level wiring: the accept loop hands each connection to the router, with its peer as ConnectInfo"),
];

/// The pure rooms: no I/O, so none of these crates, and no module but each other.
const PURE_ROOMS: &[&str] = &["domain", "engine", "pools", "reputation", "serving/render", "serving/entry", "feeds/parse"];
const IMPURE_CRATES: &[&str] = &["tokio", "sqlx", "axum", "reqwest"];

/// The use cases, and the modules they must not reach.
const USE_CASES: &[&str] = &["lookup", "distribution", "manage"];
const EDGE_MODULES: &[&str] = &["http", "console", "cli", "error", "state"];

/// One crate's sources: each file's module path and the files it imports.
struct Crate {
    root: PathBuf,
    /// Module path (`["serving", "render"]`) → file relative to `src/`.
    modules: BTreeMap<Vec<String>, String>,
    /// File → files it imports (never itself).
    imports: BTreeMap<String, BTreeSet<String>>,
    /// File → external crate roots it names (`tokio`, `axum`, …).
    externs: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other(char),
}

/// The code of a file with comments, string and character literals removed.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || (next == Some('#') && raw_string_start(&chars, i + 1)))
            && !chars.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut hashes = 0;
            i += 1;
            while chars.get(i) == Some(&'#') {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is skipped.
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the tokens before a `mod` end in `#[cfg(test)]` (optionally followed by `pub`).
fn is_test_module(before: &[Token]) -> bool {
    let before = match before.last() {
        Some(Token::Ident(word)) if word == "pub" => &before[..before.len() - 1],
        _ => before,
    };
    let attribute = [
        Token::Other('#'),
        Token::Other('['),
        Token::Ident("cfg".into()),
        Token::Other('('),
        Token::Ident("test".into()),
        Token::Other(')'),
        Token::Other(']'),
    ];
    before.ends_with(&attribute)
}

fn raw_string_start(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // `r#type` is the identifier `type`.
            out.push(Token::Ident(word.trim_start_matches("r#").to_string()));
            continue;
        }
        i += 1;
        out.push(match c {
            ':' if chars.get(i) == Some(&':') => {
                i += 1;
                Token::PathSep
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            ';' => Token::Semi,
            '*' => Token::Star,
            c if c.is_whitespace() => continue,
            c => Token::Other(c),
        });
    }
    out
}

/// Expands a `use` tree starting at `tokens[*at]` into plain paths (a glob ends in `*`).
fn use_tree(tokens: &[Token], at: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(*at) {
            Some(Token::Ident(word)) if word == "as" => {
                // `x as y`: the alias changes nothing about what is imported.
                *at += 2;
                out.push(path);
                return;
            }
            Some(Token::Ident(word)) => {
                path.push(word.clone());
                *at += 1;
            }
            Some(Token::PathSep) => *at += 1,
            Some(Token::Star) => {
                *at += 1;
                path.push("*".into());
                out.push(path);
                return;
            }
            Some(Token::Open) => {
                *at += 1;
                loop {
                    match tokens.get(*at) {
                        Some(Token::Close) => {
                            *at += 1;
                            return;
                        }
                        Some(Token::Comma) => *at += 1,
                        None => return,
                        Some(_) => use_tree(tokens, at, &path, out),
                    }
                }
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module path of a file relative to `src/` (`lib.rs` is the root).
fn module_of(relative: &str) -> Vec<String> {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).expect("readable dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Resolves an absolute module path to the file that defines the longest module prefix of it.
fn file_of(modules: &BTreeMap<Vec<String>, String>, path: &[String]) -> Option<String> {
    (0..=path.len()).rev().find_map(|len| modules.get(&path[..len]).cloned())
}

fn load(crate_dir: &str) -> Crate {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let relative = |p: &Path| p.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
    // The binary's own `crate::` is another crate; the library is what the layout is about.
    files.retain(|p| relative(p) != "main.rs");
    let modules: BTreeMap<Vec<String>, String> = files.iter().map(|p| (module_of(&relative(p)), relative(p))).collect();
    let mut imports = BTreeMap::new();
    let mut externs = BTreeMap::new();
    for path in &files {
        let file = relative(path);
        let source = std::fs::read_to_string(path).expect("readable source");
        let tokens = tokens(&strip(&source));
        let here = module_of(&file);
        // Child modules declared in this file (`mod x;`), reachable by their bare name.
        let children: BTreeSet<String> = tokens
            .windows(3)
            .filter_map(|w| match w {
                [Token::Ident(m), Token::Ident(name), Token::Semi] if m == "mod" => Some(name.clone()),
                _ => None,
            })
            .collect();
        let mut paths: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        // Inline modules (`mod tests { … }`) shift what `self` and `super` mean inside them; the
        // flag says whether it is a `#[cfg(test)]` module, whose imports are left out: nothing
        // can import a test module, so it cannot close a cycle.
        let mut inline: Vec<(String, usize, bool)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < tokens.len() {
            let in_test = inline.iter().any(|(_, _, test)| *test);
            let scope = || {
                let mut scope = here.clone();
                scope.extend(inline.iter().map(|(name, _, _)| name.clone()));
                scope
            };
            match &tokens[i] {
                Token::Open => depth += 1,
                Token::Close => {
                    depth = depth.saturating_sub(1);
                    if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                        inline.pop();
                    }
                }
                Token::Ident(word) if word == "mod" => {
                    if let (Some(Token::Ident(name)), Some(Token::Open)) = (tokens.get(i + 1), tokens.get(i + 2)) {
                        inline.push((name.clone(), depth, is_test_module(&tokens[..i])));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                }
                Token::Ident(word) if word == "use" => {
                    let mut at = i + 1;
                    let mut used = Vec::new();
                    use_tree(&tokens, &mut at, &[], &mut used);
                    let scope = scope();
                    if !in_test {
                        paths.extend(used.into_iter().map(|p| (scope.clone(), p)));
                    }
                    i = at;
                    continue;
                }
                Token::Ident(word)
                    if tokens.get(i + 1) == Some(&Token::PathSep) && (i == 0 || tokens[i - 1] != Token::PathSep) =>
                {
                    let mut path = vec![word.clone()];
                    let mut at = i + 1;
                    while tokens.get(at) == Some(&Token::PathSep) {
                        match tokens.get(at + 1) {
                            Some(Token::Ident(next)) => {
                                path.push(next.clone());
                                at += 2;
                            }
                            _ => break,
                        }
                    }
                    if !in_test {
                        paths.push((scope(), path));
                    }
                    i = at;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        let mut targets = BTreeSet::new();
        let mut crates = BTreeSet::new();
        for (scope, path) in paths {
            let Some(first) = path.first() else { continue };
            let absolute = match first.as_str() {
                "crate" => path[1..].to_vec(),
                "self" => scope.iter().cloned().chain(path[1..].iter().cloned()).collect(),
                "super" => {
                    let mut base = scope.clone();
                    let mut rest = &path[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.into_iter().chain(rest.iter().cloned()).collect()
                }
                name if scope == here && children.contains(name) => here.iter().cloned().chain(path.iter().cloned()).collect(),
                name => {
                    crates.insert(name.to_string());
                    continue;
                }
            };
            let absolute: Vec<String> = absolute.into_iter().filter(|s| s != "*" && s != "self").collect();
            if let Some(target) = file_of(&modules, &absolute)
                && target != file
            {
                targets.insert(target);
            }
        }
        imports.insert(file.clone(), targets);
        externs.insert(file, crates);
    }
    Crate { root, modules, imports, externs }
}

/// Strongly connected components of more than one file (Tarjan), each as a sorted list.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// One concrete loop through a component, for the failure message: `a.rs -> b.rs -> a.rs`.
fn example_loop(graph: &BTreeMap<String, BTreeSet<String>>, component: &[String]) -> String {
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let start = component[0].as_str();
    // Breadth-first from the start, inside the component, until an edge leads back to it.
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten().map(String::as_str).filter(|n| members.contains(n)) {
            if next == start {
                let mut path = vec![node];
                let mut at = node;
                while at != start {
                    at = previous[at];
                    path.push(at);
                }
                path.reverse();
                path.push(start);
                return path.join(" -> ");
            }
            if !previous.contains_key(next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    component.join(", ")
}

fn in_room(file: &str, room: &str) -> bool {
    file == format!("{room}.rs") || file.starts_with(&format!("{room}/"))
}

fn check_cycles(name: &str, krate: &Crate) -> Vec<String> {
    let mut problems = Vec::new();
    let found = cycles(&krate.imports);
    let excused = |files: &[&str], component: &[String]| {
        let mut files: Vec<&str> = files.to_vec();
        files.sort_unstable();
        files == component.iter().map(String::as_str).collect::<Vec<_>>()
    };
    if name == "server" {
        for (files, _) in CYCLE_EXCEPTIONS.iter().filter(|(files, _)| !found.iter().any(|c| excused(files, c))) {
            problems.push(format!(
                "{name}: the cycle exception for {} no longer matches a cycle: update or remove it",
                files.join(", ")
            ));
        }
    }
    for component in found {
        let excused = CYCLE_EXCEPTIONS.iter().any(|(files, _)| excused(files, &component));
        if !excused {
            problems.push(format!(
                "{name}: import cycle {} (files that reach each other: {})",
                example_loop(&krate.imports, &component),
                component.join(", ")
            ));
        }
    }
    problems
}

#[test]
fn no_two_files_import_each_other() {
    let mut problems = Vec::new();
    for name in ["server", "client"] {
        let krate = load(name);
        assert!(krate.modules.len() > 10, "{name}: sources not found under {}", krate.root.display());
        problems.extend(check_cycles(name, &krate));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn each_room_reaches_only_what_it_may() {
    let krate = load("server");
    let mut problems = Vec::new();
    for (file, crates) in &krate.externs {
        if crates.contains("sqlx") && !in_room(file, "store") && !SQLX_EXCEPTIONS.iter().any(|(f, _)| f == file) {
            problems.push(format!("{file} names sqlx: SQL belongs in store/"));
        }
        let edge = in_room(file, "http") || in_room(file, "console");
        if crates.contains("axum") && !edge && !AXUM_EXCEPTIONS.iter().any(|(f, _)| f == file) {
            problems.push(format!("{file} names axum: HTTP belongs in http/ or console/"));
        }
        if PURE_ROOMS.iter().any(|room| in_room(file, room)) {
            for banned in IMPURE_CRATES.iter().filter(|c| crates.contains(**c)) {
                problems.push(format!("{file} is a pure room but names {banned}"));
            }
        }
    }
    for (file, _) in SQLX_EXCEPTIONS.iter().filter(|(f, _)| !krate.externs.get(*f).is_some_and(|c| c.contains("sqlx"))) {
        problems.push(format!("{file} no longer names sqlx: remove its exception"));
    }
    for (file, _) in AXUM_EXCEPTIONS.iter().filter(|(f, _)| !krate.externs.get(*f).is_some_and(|c| c.contains("axum"))) {
        problems.push(format!("{file} no longer names axum: remove its exception"));
    }
    for (file, targets) in &krate.imports {
        if PURE_ROOMS.iter().any(|room| in_room(file, room)) {
            for target in targets.iter().filter(|t| !PURE_ROOMS.iter().any(|room| in_room(t, room))) {
                problems.push(format!("{file} is a pure room but imports {target}"));
            }
        }
        if !USE_CASES.iter().any(|room| in_room(file, room)) {
            continue;
        }
        for target in targets.iter().filter(|t| EDGE_MODULES.iter().any(|room| in_room(t, room))) {
            problems.push(format!("{file} is a use case but imports {target}"));
        }
        for banned in ["axum", "sqlx"].iter().filter(|c| krate.externs[file].contains(**c)) {
            problems.push(format!("{file} is a use case but names {banned}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_imports_and_ignores_comments() {
    let code =
        strip("// use crate::a;\nuse crate::{b::{self, C}, d as e};\nlet s = \"crate::f::g\"; let c = 'x';\nsuper::h::i();");
    let tokens = tokens(&code);
    let mut at = 1;
    let mut used = Vec::new();
    use_tree(&tokens, &mut at, &[], &mut used);
    let used: Vec<String> = used.iter().map(|p| p.join("::")).collect();
    assert_eq!(used, ["crate::b::self", "crate::b::C", "crate::d"]);
    assert!(!code.contains("crate::a") && !code.contains("crate::f"), "comments and strings are gone: {code}");
    assert!(code.contains("super::h::i"));
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs".to_string(), BTreeSet::from(["b.rs".to_string()])),
        ("b.rs".to_string(), BTreeSet::from(["c.rs".to_string()])),
        ("c.rs".to_string(), BTreeSet::from(["a.rs".to_string()])),
        ("d.rs".to_string(), BTreeSet::from(["a.rs".to_string()])),
    ]
    .into();
    let found = cycles(&graph);
    assert_eq!(found, [vec!["a.rs".to_string(), "b.rs".into(), "c.rs".into()]]);
    assert_eq!(example_loop(&graph, &found[0]), "a.rs -> b.rs -> c.rs -> a.rs");
}
