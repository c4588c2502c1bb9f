//! The layering rules of ARCHITECTURE.md that a machine can check: the library crates return
//! values; only the CLI prints, reads the environment or exits.

use std::path::{Path, PathBuf};

use crate::workspace;

/// The crates that must not print, read the environment or exit.
const LIBRARIES: [&str; 5] = [
    "rollbook-plan",
    "rollbook-exec",
    "rollbook-ssh",
    "rollbook-http",
    "rollbook-sql",
];

/// What only the CLI may write, and why.
const FORBIDDEN: [(&str, &str); 11] = [
    ("env::var", "reads the environment"),
    ("env::args", "reads the command line"),
    ("println!", "prints"),
    ("eprintln!", "prints"),
    ("print!", "prints"),
    ("eprint!", "prints"),
    ("dbg!", "prints"),
    ("process::exit", "exits the process"),
    ("io::stdout", "writes to the terminal"),
    ("io::stderr", "writes to the terminal"),
    ("env::set_var", "changes the environment"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without its comments (`//` to the end of the line, `/* */` blocks,
/// which may span lines: `in_block` carries that over).
fn code_of(line: &str, in_block: &mut bool) -> String {
    let mut code = String::new();
    let mut rest = line;
    loop {
        if *in_block {
            match rest.find("*/") {
                Some(end) => {
                    rest = &rest[end + 2..];
                    *in_block = false;
                }
                None => return code,
            }
        }
        let line_comment = rest.find("//");
        let block = rest.find("/*");
        match (line_comment, block) {
            (Some(l), b) if b.is_none_or(|b| l < b) => {
                code.push_str(&rest[..l]);
                return code;
            }
            (_, Some(b)) => {
                code.push_str(&rest[..b]);
                rest = &rest[b + 2..];
                *in_block = true;
            }
            _ => {
                code.push_str(rest);
                return code;
            }
        }
    }
}

/// Every forbidden use in `src` of the library crates, as `file:line: what (why)`.
fn violations(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for krate in LIBRARIES {
        let mut files = Vec::new();
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut in_block = false;
            for (n, line) in text.lines().enumerate() {
                let code = code_of(line, &mut in_block);
                if let Some((what, why)) = FORBIDDEN.iter().find(|(what, _)| code.contains(what)) {
                    let shown = file.strip_prefix(root).unwrap_or(&file).display();
                    found.push(format!("{shown}:{}: `{what}` {why}", n + 1));
                }
            }
        }
    }
    found
}

#[test]
fn library_crates_do_not_print_read_the_environment_or_exit() {
    let found = violations(&workspace());
    assert!(
        found.is_empty(),
        "only rollbook-cli may print, read the environment or exit (ARCHITECTURE.md, Invariants); \
         give the value as an option or return it instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn comments_are_not_code() {
    let mut in_block = false;
    assert_eq!(
        code_of("let a = 1; // println!", &mut in_block),
        "let a = 1; "
    );
    assert_eq!(code_of("/// reads `std::env::var`", &mut in_block), "");
    assert_eq!(code_of("a /* dbg!(x)", &mut in_block), "a ");
    assert!(in_block);
    assert_eq!(code_of("still dbg!() */ b", &mut in_block), " b");
    assert!(!in_block);
    assert_eq!(
        code_of("std::env::var(\"X\")", &mut in_block),
        "std::env::var(\"X\")"
    );
}
