//! `--limit`: a run narrowed to some hosts. Patterns are host names, inventory group names
//! (all their hosts, children included: the compiler hands in expanded groups) and globs over
//! both (`web-*`, `us-east-op-?`). A `for_each` instance whose item is a host of the inventory
//! (its name, or an object with its `name`) runs only when that host is within the limit;
//! instances over anything else (namespaces, databases) and steps outside `for_each` run as
//! usual.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The hosts a run is narrowed to; empty patterns mean no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limit {
    /// As given, in order.
    pub patterns: Vec<String>,
    /// Every host of the inventory.
    known: BTreeSet<String>,
    /// The hosts the patterns match.
    hosts: BTreeSet<String>,
}

impl Limit {
    /// The hosts of `inventory` (group → host names) that `patterns` match. A pattern that
    /// matches no host and no group is an error: a typo must not narrow a run to nothing.
    pub fn new(
        patterns: &[String],
        inventory: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, String> {
        let known: BTreeSet<String> = inventory.values().flatten().cloned().collect();
        let mut hosts = BTreeSet::new();
        for pattern in patterns {
            let mut matched = false;
            for (group, members) in inventory {
                if glob(pattern, group) {
                    matched = true;
                    hosts.extend(members.iter().cloned());
                }
            }
            for host in &known {
                if glob(pattern, host) {
                    matched = true;
                    hosts.insert(host.clone());
                }
            }
            if !matched {
                return Err(format!(
                    "--limit {pattern}: no host or group of the inventory is named so"
                ));
            }
        }
        Ok(Limit {
            patterns: patterns.to_vec(),
            known,
            hosts,
        })
    }

    /// No limit.
    pub fn is_none(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The hosts within the limit, by name.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }

    /// Whether a `for_each` item stays: anything but a host outside the limit.
    pub fn keeps(&self, item: &Value) -> bool {
        if self.is_none() {
            return true;
        }
        let name = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("name").and_then(Value::as_str),
            _ => None,
        };
        match name {
            Some(name) if self.known.contains(name) => self.hosts.contains(name),
            _ => true,
        }
    }
}

/// `*` any run of characters, `?` one character, anything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            (
                "ops".to_string(),
                vec!["op-1".to_string(), "op-2".to_string()],
            ),
            (
                "workers".to_string(),
                vec!["w-1".to_string(), "w-2".to_string(), "w-3".to_string()],
            ),
        ])
    }

    fn limited(patterns: &[&str]) -> Vec<String> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Limit::new(&patterns, &inventory())
            .unwrap()
            .hosts()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn names_groups_and_globs_pick_hosts() {
        assert_eq!(limited(&["op-2"]), ["op-2"]);
        assert_eq!(limited(&["workers"]), ["w-1", "w-2", "w-3"]);
        assert_eq!(limited(&["w-?", "op-1"]), ["op-1", "w-1", "w-2", "w-3"]);
        assert_eq!(limited(&["*-1"]), ["op-1", "w-1"]);
    }

    #[test]
    fn a_pattern_that_names_nothing_is_an_error() {
        let err = Limit::new(&["web-9".to_string()], &inventory()).unwrap_err();
        assert!(err.contains("--limit web-9"), "{err}");
    }

    #[test]
    fn only_hosts_of_the_inventory_are_filtered() {
        let limit = Limit::new(&["op-1".to_string()], &inventory()).unwrap();
        assert!(limit.keeps(&Value::from("op-1")));
        assert!(!limit.keeps(&Value::from("op-2")));
        assert!(!limit.keeps(&serde_json::json!({ "name": "w-1" })));
        assert!(limit.keeps(&Value::from("kube-system")), "not a host: kept");
        assert!(Limit::default().keeps(&Value::from("op-2")));
    }
}
