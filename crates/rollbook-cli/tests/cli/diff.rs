//! `rollbook diff`: two versions of a plan in a real git repository, compared as dry runs.

use std::path::Path;
use std::process::Command;

use crate::{Ran, rollbook_command};

/// A git repository in a temporary directory, with `plans/`.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@example.invalid"]);
        repo.git(&["config", "user.name", "test"]);
        std::fs::create_dir_all(repo.path().join("plans")).unwrap();
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn rollbook(&self, args: &[&str]) -> Ran {
        rollbook_command(self.path())
            .args(args)
            .output()
            .unwrap()
            .into()
    }
}

/// A rolling restore over nine hosts, one at a time, with a plan-wide timeout.
fn rolling(timeout: &str, concurrency: u32, confirm: bool) -> String {
    let hosts: Vec<String> = (1..=9)
        .map(|i| format!("    - {{ name: op-{i}, address: 127.0.0.{} }}", i + 1))
        .collect();
    format!(
        "version: 1\nname: operator-rollback\n{}lock: platform\ninventory:\n  operators:\n{}\ndefaults:\n  timeout: {timeout}\nsteps:\n  - id: roll\n    for_each: \"{{{{ inventory.operators }}}}\"\n    concurrency: {concurrency}\n    steps:\n      - id: stop\n        ssh: {{ host: \"{{{{ item }}}}\", run: systemctl stop operator }}\n      - id: restore\n        ssh: {{ host: \"{{{{ item }}}}\", run: cp /opt/operator.backup /opt/operator }}\n      - id: start\n        ssh: {{ host: \"{{{{ item }}}}\", run: systemctl start operator }}\n",
        if confirm { "confirm: ROLLBACK\n" } else { "" },
        hosts.join("\n")
    )
}

/// The example: a timeout from 60s to 90s and concurrency from 1 to 3, under 15 lines.
#[test]
fn a_timeout_and_a_concurrency_change_read_in_a_few_lines() {
    let repo = Repo::new();
    repo.write("plans/operator-rollback.yaml", &rolling("60s", 1, true));
    repo.commit("first");
    repo.write("plans/operator-rollback.yaml", &rolling("90s", 3, true));
    repo.commit("second");

    let text = repo.rollbook(&["diff", "HEAD~1", "HEAD"]);
    text.assert_code(0);
    let body: Vec<&str> = text.stdout.lines().skip(1).collect();
    assert!(text.stdout.lines().count() < 15, "{}", text.stdout);
    insta::assert_snapshot!("diff_text", body.join("\n"));

    let md = repo.rollbook(&["diff", "HEAD~1", "HEAD", "--format", "markdown"]);
    md.assert_code(0);
    let md_body: Vec<&str> = md
        .stdout
        .lines()
        .filter(|l| !l.contains(" → ") || l.starts_with('|') || l.starts_with('-'))
        .collect();
    insta::assert_snapshot!("diff_markdown", md_body.join("\n"));

    let json = repo.rollbook(&["diff", "HEAD~1", "HEAD", "--format", "json"]);
    json.assert_code(0);
    let short = |rev: &str| {
        let out = Command::new("git")
            .args(["rev-parse", "--short", rev])
            .current_dir(repo.path())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    insta::assert_snapshot!(
        "diff_json",
        json.stdout
            .replace(&short("HEAD~1"), "BASE")
            .replace(&short("HEAD"), "HEAD")
    );
    let doc = json.json();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["plans"][0]["status"], "changed");
    assert_eq!(
        doc["plans"][0]["risks"][0],
        "concurrency 1 → 3 on `roll` (9 instances)"
    );
    let changes = doc["plans"][0]["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["field"] == "timeout"
            && c["from"] == "60s"
            && c["to"] == "90s"
            && c["nodes"] == 27),
        "{changes:?}"
    );
}

/// The working tree against a revision: only plans that differ are compared, a removed
/// confirmation and a new step are risks, and what did not change says so.
#[test]
fn the_working_tree_is_compared_with_a_revision() {
    let repo = Repo::new();
    repo.write("plans/operator-rollback.yaml", &rolling("60s", 1, true));
    repo.write(
        "plans/other.yaml",
        "version: 1\nname: other\nsteps:\n  - id: a\n    shell: { run: 'true' }\n",
    );
    repo.commit("first");
    let same = repo.rollbook(&["diff", "HEAD"]);
    same.assert_code(0);
    assert_eq!(same.stdout, "no plan changed\n");

    let mut changed = rolling("60s", 1, false);
    changed.push_str("  - id: announce\n    shell: { run: echo done }\n");
    repo.write("plans/operator-rollback.yaml", &changed);
    repo.write(
        "plans/nested/new-plan.yml",
        "version: 1\nname: new-plan\nsteps:\n  - id: a\n    shell: { run: 'true' }\n",
    );
    let ran = repo.rollbook(&["diff", "HEAD"]);
    ran.assert_code(0);
    assert!(ran.stdout.contains("operator-rollback ("), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("! confirmation removed"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("! new step announce"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("new-plan (") && ran.stdout.contains("): added"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("other ("), "{}", ran.stdout);
}

/// Two files, no git: the same comparison. Secrets stay masked in what is shown.
#[test]
fn two_files_are_compared_and_secrets_stay_masked() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |token_header: &str| {
        format!(
            "version: 1\nname: notify\nsecrets:\n  token: {{ env: SLACK_TOKEN }}\nsteps:\n  - id: post\n    http:\n      url: https://hooks.example.invalid/x\n      method: POST\n      headers: {{ Authorization: \"{token_header} {{{{ secrets.token }}}}\" }}\n"
        )
    };
    std::fs::write(dir.path().join("old.yaml"), plan("Bearer")).unwrap();
    std::fs::write(dir.path().join("new.yaml"), plan("Token")).unwrap();
    let ran: Ran = rollbook_command(dir.path())
        .env("SLACK_TOKEN", "xoxb-very-secret")
        .args(["diff", "old.yaml", "new.yaml"])
        .output()
        .unwrap()
        .into();
    ran.assert_code(0);
    assert!(ran.stdout.contains("command"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("xoxb-very-secret"), "{}", ran.stdout);
    assert!(ran.stdout.contains("***"), "{}", ran.stdout);
}

/// A head that does not compile is reported with its diagnostics, exit 2.
#[test]
fn a_plan_that_does_not_compile_is_exit_2() {
    let repo = Repo::new();
    repo.write(
        "plans/p.yaml",
        "version: 1\nname: p\nsteps:\n  - id: a\n    shell: { run: 'true' }\n",
    );
    repo.commit("first");
    repo.write(
        "plans/p.yaml",
        "version: 1\nname: p\nsteps:\n  - id: a\n    shel: { run: 'true' }\n",
    );
    let ran = repo.rollbook(&["diff", "HEAD"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("plans/p.yaml:5:5"), "{}", ran.stderr);
    let bad = repo.rollbook(&["diff", "no-such-rev"]);
    bad.assert_code(2);
    assert!(
        bad.stderr
            .contains("neither a plan file nor a git revision"),
        "{}",
        bad.stderr
    );
}
