//! What `rollbook --version` says beside the version: the commit it was built from and the
//! build's date (`SOURCE_DATE_EPOCH` when set, for reproducible builds).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    let date = humantime::format_rfc3339_seconds(when).to_string();
    println!("cargo:rustc-env=ROLLBOOK_COMMIT={commit}");
    println!("cargo:rustc-env=ROLLBOOK_BUILD_DATE={}", &date[..10]);
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or checkout builds the line again (the git directory may be elsewhere:
    // a worktree's `.git` is a file).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let reference = std::path::Path::new(&dir).join(&head);
            if reference.exists() {
                println!("cargo:rerun-if-changed={}", reference.display());
            }
        }
    }
}
