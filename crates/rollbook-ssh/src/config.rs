//! The parts of `~/.ssh/config` operators rely on: `Host` blocks with `HostName`, `User`,
//! `Port` and `IdentityFile`. As in OpenSSH, the first value found for a key wins, and a
//! block applies when one of its patterns (`*` and `?` wildcards, `!` negation) matches.

use std::path::{Path, PathBuf};

/// What the config says about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `HostName`: the address to connect to instead of the name.
    pub host_name: Option<String>,
    /// `User`: the login user.
    pub user: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `IdentityFile` lines, in the order written, `~` expanded.
    pub identity_files: Vec<PathBuf>,
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn matches(patterns: &[String], host: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, host) {
                return false;
            }
        } else if glob(p, host) {
            matched = true;
        }
    }
    matched
}

/// Reads the settings for `host` from config text. `home` expands `~` in paths.
pub fn lookup(text: &str, host: &str, home: &Path) -> HostConfig {
    let mut out = HostConfig::default();
    let mut active = true; // lines before the first `Host` apply to every host
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (
                k,
                v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                    .trim(),
            ),
            None => continue,
        };
        let value = value.trim_matches('"');
        match key.to_ascii_lowercase().as_str() {
            "host" => {
                let patterns: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                active = matches(&patterns, host);
            }
            "match" => active = false, // not supported: ignored rather than misapplied
            _ if !active => {}
            "hostname" if out.host_name.is_none() => {
                out.host_name = Some(value.replace("%h", host))
            }
            "user" if out.user.is_none() => out.user = Some(value.to_string()),
            "port" if out.port.is_none() => out.port = value.parse().ok(),
            "identityfile" => {
                let path = match value.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None => PathBuf::from(value),
                };
                out.identity_files.push(path);
            }
            _ => {}
        }
    }
    out
}

/// Reads `~/.ssh/config` for `host`; nothing when there is no such file.
pub fn for_host(host: &str, home: &Path) -> HostConfig {
    std::fs::read_to_string(home.join(".ssh/config"))
        .map(|text| lookup(&text, host, home))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "
User fallback-not-first
Host bastion
    HostName 10.0.0.1
Host *-op-? !eu-west-op-9
    User deploy
    Port 2222
    IdentityFile ~/.ssh/ops_ed25519
Host *
    User everyone
    Port 22
";

    #[test]
    fn first_value_wins_and_patterns_match_like_openssh() {
        let home = Path::new("/home/alice");
        let c = lookup(CONFIG, "us-east-op-1", home);
        assert_eq!(c.user.as_deref(), Some("fallback-not-first"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(
            c.identity_files,
            [PathBuf::from("/home/alice/.ssh/ops_ed25519")]
        );
        let c = lookup(CONFIG, "eu-west-op-9", home);
        assert_eq!(c.port, Some(22));
        let c = lookup(CONFIG, "bastion", home);
        assert_eq!(c.host_name.as_deref(), Some("10.0.0.1"));
        assert_eq!(c.port, Some(22));
    }
}
