//! The pull-request review's script (`.github/actions/review/review.sh`) against a local git
//! repository with two commits: the comment it writes, as a snapshot.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn plan(timeout: &str, concurrency: u32) -> String {
    format!(
        "version: 1\nname: restart\ninventory:\n  web:\n    - {{ name: web-1, address: 127.0.0.2 }}\n    - {{ name: web-2, address: 127.0.0.3 }}\ndefaults:\n  timeout: {timeout}\nsteps:\n  - id: roll\n    for_each: \"{{{{ inventory.web }}}}\"\n    concurrency: {concurrency}\n    steps:\n      - id: restart\n        ssh: {{ host: \"{{{{ item }}}}\", run: systemctl restart web }}\n"
    )
}

fn review(dir: &Path, args: &[&str]) -> (i32, String) {
    let script = crate::workspace().join(".github/actions/review/review.sh");
    let mut cmd = Command::new("bash");
    crate::clean_env(&mut cmd);
    let out = cmd
        .arg(script)
        .args(args)
        .current_dir(dir)
        .env("ROLLBOOK", assert_cmd::cargo::cargo_bin("rollbook"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn the_review_comment_of_a_change_to_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.email", "test@example.invalid"]);
    git(d, &["config", "user.name", "test"]);
    std::fs::create_dir_all(d.join("plans")).unwrap();
    std::fs::write(d.join("plans/restart.yaml"), plan("60s", 1)).unwrap();
    std::fs::write(d.join("README"), "plans\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "first"]);
    let base = git(d, &["rev-parse", "HEAD"]);
    std::fs::write(d.join("plans/restart.yaml"), plan("90s", 2)).unwrap();
    git(d, &["commit", "-q", "-am", "second"]);
    let head = git(d, &["rev-parse", "HEAD"]);

    let (code, comment) = review(d, &[&base, &head]);
    assert_eq!(code, 0, "{comment}");
    let short = |sha: &str| git(d, &["rev-parse", "--short", sha]);
    let comment = comment
        .replace(&short(&base), "BASE")
        .replace(&short(&head), "HEAD");
    assert!(
        comment.starts_with("<!-- rollbook-review -->\n"),
        "{comment}"
    );
    insta::assert_snapshot!("review_comment", comment);

    // The same with the head checked out (the action's case): the working tree.
    let (code, again) = review(d, &[&base]);
    assert_eq!(code, 0);
    assert!(
        again.contains("concurrency 1 → 2 on `roll` (2 instances)"),
        "{again}"
    );

    // Nothing under plans/ changed: one line says so.
    std::fs::write(d.join("README"), "more\n").unwrap();
    git(d, &["commit", "-q", "-am", "third"]);
    let (code, none) = review(d, &["HEAD~1", "HEAD"]);
    assert_eq!(code, 0);
    assert!(none.contains("No plan under `plans` changes."), "{none}");
}

/// An invalid plan in the change: the comment says so and shows the diagnostics.
#[test]
fn the_review_of_an_invalid_plan_shows_the_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.email", "test@example.invalid"]);
    git(d, &["config", "user.name", "test"]);
    std::fs::create_dir_all(d.join("plans")).unwrap();
    std::fs::write(d.join("plans/restart.yaml"), plan("60s", 1)).unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "first"]);
    std::fs::write(
        d.join("plans/restart.yaml"),
        plan("60s", 1).replace("concurrency", "concurency"),
    )
    .unwrap();
    let (code, comment) = review(d, &["HEAD"]);
    assert_eq!(code, 0, "{comment}");
    assert!(comment.contains("**invalid plans**"), "{comment}");
    assert!(comment.contains("unknown key `concurency`"), "{comment}");
}
