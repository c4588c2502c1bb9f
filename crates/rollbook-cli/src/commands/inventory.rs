//! `rollbook inventory [PLAN] [--inventory FILE|DIR] [--graph]`: the inventory a plan will
//! see. Its groups with their hosts (children expanded, as templates, `for_each` and `--limit`
//! see them), each host's address, port, user and vars; or a Mermaid graph of groups →
//! children → hosts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rollbook_plan::compile;
use rollbook_plan::model::{Entries, Group, HostDetails};
use serde_json::{Value, json};

use super::{InventoryFiles, PlanFile, valid_plan};
use crate::terminal::escape;
use crate::{Failure, diagnostics};

pub struct Request<'a> {
    pub plan: Option<&'a str>,
    pub inventory: Option<&'a Path>,
    pub graph: bool,
    pub json: bool,
}

/// The inventory as a plan sees it.
struct View {
    /// Where it comes from, for the header.
    sources: Vec<String>,
    /// Groups as written (after `--inventory` replaced the plan's of the same name).
    written: BTreeMap<String, Group>,
    /// Each group's hosts, children expanded.
    expanded: BTreeMap<String, Vec<String>>,
    /// Details of the hosts written as objects.
    details: BTreeMap<String, HostDetails>,
}

pub fn run(
    plans_dir: &Path,
    request: &Request<'_>,
    style: diagnostics::Style,
) -> Result<(), Failure> {
    if request.plan.is_none() && request.inventory.is_none() {
        return Err(Failure::invalid(
            "give a plan, `--inventory FILE|DIR`, or both: `rollbook inventory PLAN --inventory inventories/prod`",
        ));
    }
    let mut sources = Vec::new();
    let plan = match request.plan {
        Some(name) => {
            let file = PlanFile::find(plans_dir, name)?;
            let checked = rollbook_plan::check(file.source.clone(), file.stem());
            let plan = valid_plan(&checked, style)?.clone();
            sources.push(format!("plan {}", plan.name.value));
            Some(plan)
        }
        None => None,
    };
    let extra = match request.inventory {
        Some(path) => {
            let files = InventoryFiles::read(path)?;
            sources.push(match files.files.len() {
                1 if !files.dir => format!("--inventory {}", path.display()),
                n => format!(
                    "--inventory {} ({n} file{})",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ),
            });
            files.load(style)?
        }
        None => BTreeMap::new(),
    };
    let empty = Entries::default();
    let plan_groups = plan.as_ref().map_or(&empty, |p| &p.inventory);
    let (written, details) = compile::merge_inventory(plan_groups, &extra);
    let expanded = rollbook_plan::inventory::expand(&written).map_err(|e| {
        Failure::invalid(format!(
            "{e} (the plan's groups and `--inventory`'s together)"
        ))
    })?;
    let view = View {
        sources,
        written,
        expanded,
        details,
    };
    crate::print(&if request.graph {
        view.mermaid()
    } else if request.json {
        let mut text = serde_json::to_string_pretty(&view.json()).unwrap_or_default();
        text.push('\n');
        text
    } else {
        view.text()
    });
    Ok(())
}

impl View {
    /// Every host once, by name: those of the groups and those only given details.
    fn hosts(&self) -> Vec<&str> {
        let all: std::collections::BTreeSet<&str> = self
            .expanded
            .values()
            .flatten()
            .map(String::as_str)
            .chain(self.details.keys().map(String::as_str))
            .collect();
        all.into_iter().collect()
    }

    /// The groups a host is in (children counted), by name.
    fn groups_of(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (group, hosts) in &self.expanded {
            for h in hosts {
                of.entry(h.as_str()).or_default().push(group.as_str());
            }
        }
        of
    }

    fn json(&self) -> Value {
        let groups: serde_json::Map<String, Value> = self
            .written
            .iter()
            .map(|(name, g)| {
                let own: Vec<&str> = g.hosts().iter().map(|h| h.name().value.as_str()).collect();
                let children: Vec<&str> = g.children().iter().map(|c| c.value.as_str()).collect();
                (
                    name.clone(),
                    json!({
                        "hosts": self.expanded.get(name).cloned().unwrap_or_default(),
                        "children": children,
                        "own_hosts": own,
                    }),
                )
            })
            .collect();
        let of = self.groups_of();
        let hosts: serde_json::Map<String, Value> = self
            .hosts()
            .into_iter()
            .map(|h| {
                let d = self.details.get(h);
                let record = rollbook_plan::inventory::host_record(h, d);
                (
                    h.to_string(),
                    json!({
                        "address": record["address"],
                        "port": record.get("port"),
                        "user": record.get("user"),
                        "vars": record["vars"],
                        "groups": of.get(h).cloned().unwrap_or_default(),
                    }),
                )
            })
            .collect();
        json!({ "version": 1, "sources": self.sources, "groups": groups, "hosts": hosts })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let hosts = self.hosts();
        let _ = writeln!(
            out,
            "inventory of {}: {} group{}, {} host{}",
            escape(&self.sources.join(" with ")),
            self.written.len(),
            if self.written.len() == 1 { "" } else { "s" },
            hosts.len(),
            if hosts.len() == 1 { "" } else { "s" },
        );
        for (name, g) in &self.written {
            let members = self.expanded.get(name).map_or(&[][..], Vec::as_slice);
            let children: Vec<String> = g
                .children()
                .iter()
                .map(|c| escape(&c.value).into_owned())
                .collect();
            let _ = write!(
                out,
                "\ngroup {}: {} host{}",
                escape(name),
                members.len(),
                if members.len() == 1 { "" } else { "s" }
            );
            if !children.is_empty() {
                let _ = write!(out, " · children {}", children.join(", "));
            }
            out.push('\n');
            for h in members {
                let _ = writeln!(out, "  {}", escape(h));
            }
        }
        let _ = writeln!(out, "\nhosts");
        let of = self.groups_of();
        for h in hosts {
            let record = rollbook_plan::inventory::host_record(h, self.details.get(h));
            let mut line = format!("  {}", escape(h));
            let address = record["address"].as_str().unwrap_or(h);
            if address != h {
                let _ = write!(line, "  address {}", escape(address));
            }
            if let Some(p) = record.get("port") {
                let _ = write!(line, "  port {p}");
            }
            if let Some(u) = record.get("user").and_then(Value::as_str) {
                let _ = write!(line, "  user {}", escape(u));
            }
            if let Some(vars) = record["vars"].as_object()
                && !vars.is_empty()
            {
                let shown: Vec<String> = vars
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{}={}", escape(k), escape(s)),
                        other => format!("{}={}", escape(k), escape(&other.to_string())),
                    })
                    .collect();
                let _ = write!(line, "  vars {}", shown.join(" "));
            }
            if let Some(groups) = of.get(h) {
                let _ = write!(line, "  (in {})", escape(&groups.join(", ")));
            }
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// Groups → their children and their own hosts; a host once, however many groups list it.
    fn mermaid(&self) -> String {
        use crate::graph::mermaid_text;
        let mut out = String::from("flowchart LR\n");
        let group_id: BTreeMap<&str, String> = self
            .written
            .keys()
            .enumerate()
            .map(|(i, g)| (g.as_str(), format!("g{i}")))
            .collect();
        let host_id: BTreeMap<&str, String> = self
            .hosts()
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h, format!("h{i}")))
            .collect();
        for (g, id) in &group_id {
            let _ = writeln!(out, "  {id}[\"{}\"]", mermaid_text(g));
        }
        for (h, id) in &host_id {
            let _ = writeln!(out, "  {id}([\"{}\"])", mermaid_text(h));
        }
        for (name, g) in &self.written {
            let from = &group_id[name.as_str()];
            for c in g.children() {
                if let Some(to) = group_id.get(c.value.as_str()) {
                    let _ = writeln!(out, "  {from} --> {to}");
                }
            }
            let mut drawn = std::collections::HashSet::new();
            for h in g.hosts() {
                let h = h.name().value.as_str();
                if drawn.insert(h)
                    && let Some(to) = host_id.get(h)
                {
                    let _ = writeln!(out, "  {from} --> {to}");
                }
            }
        }
        out
    }
}
