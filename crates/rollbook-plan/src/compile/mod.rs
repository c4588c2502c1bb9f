//! A validated plan + bound params → one concrete DAG per phase (`steps`, `on_failure`,
//! `finally`).
//!
//! Groups and `for_each` over values known now (literal lists, params, inventory groups) are
//! expanded into nodes named like `roll[us-east-op-2].restore`. A `for_each` over a step's
//! output cannot be known yet: it stays one *deferred* node that the executor expands when the
//! step it reads has finished.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::calls::Library;
use crate::diagnostic::did_you_mean;
use crate::model::*;
use crate::params::{check_value, display_value, parse_cli};
use crate::template;

mod layers;
mod limit;
mod outline;
mod params;
mod reads;
mod settings;
pub mod size;

pub use limit::Limit;
pub use outline::{Outline, Part};
pub use params::{ParamInput, bind_params};
pub use reads::{step_reads, visit_templates};
use settings::settings;

/// Facts about the run that templates can read as `run.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// The run's id (its journal directory's name).
    pub id: String,
    /// Why the run was started, as the operator said.
    pub reason: String,
    /// Who started it.
    pub user: String,
    /// RFC 3339, UTC.
    pub started_at: String,
}

/// Which list of steps a phase comes from, in run order (`Main < OnFailure < Finally`).
///
/// Written (in the journal, events and JSON) as the plan's key for that list: `steps`,
/// `on_failure`, `finally`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PhaseKind {
    /// The plan's `steps`.
    #[serde(rename = "steps")]
    Main,
    /// `on_failure`: only after a failure halted the main steps.
    #[serde(rename = "on_failure")]
    OnFailure,
    /// `finally`: always, last.
    #[serde(rename = "finally")]
    Finally,
}

impl PhaseKind {
    /// Every phase, in the order they run.
    pub const ALL: [PhaseKind; 3] = [PhaseKind::Main, PhaseKind::OnFailure, PhaseKind::Finally];

    /// The plan key of the phase's steps: `steps`, `on_failure` or `finally`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Main => "steps",
            PhaseKind::OnFailure => "on_failure",
            PhaseKind::Finally => "finally",
        }
    }
}

impl std::fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PhaseKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhaseKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::UnknownPhase(s.to_string()))
    }
}

impl PartialEq<str> for PhaseKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PhaseKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A plan with params bound and every step expanded into concrete nodes.
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    /// The plan's name.
    pub name: String,
    /// The plan's description.
    pub description: Option<String>,
    /// How bad the situation is that the plan answers.
    pub severity: Option<Severity>,
    /// The phrase to type before the run starts.
    pub confirm: Option<String>,
    /// The lock key (the plan's `lock`, else its name).
    pub lock: String,
    /// `budget`: how long the rollback may take.
    pub budget: Option<std::time::Duration>,
    /// Every param with its bound value.
    pub params: Map<String, Value>,
    /// Host names by group, after `--inventory` overrides, each group with its children's
    /// hosts ([`crate::inventory::expand`]).
    pub inventory: BTreeMap<String, Vec<String>>,
    /// Connection details of hosts given as objects in the inventory.
    pub hosts: BTreeMap<String, HostDetails>,
    /// The plan's `defaults`, for rendering actions.
    pub defaults: Defaults,
    /// The plan's named connections.
    pub connections: Entries<Connection>,
    /// Where each secret's value comes from (read by the CLI at run time).
    pub secrets: Entries<SecretSource>,
    /// The template context without `steps`, `secrets`, `item`, `index` and `host`: `params`,
    /// `inventory` (the groups, and `hosts`: every host's record), `plan`, `run`.
    pub context: Value,
    /// The three phases, in run order (a phase may have no nodes).
    pub phases: Vec<Phase>,
    /// The hosts the run is narrowed to (`--limit`), if it is.
    pub limit: Limit,
}

/// One of the plan's graphs. Edges point from a node to the nodes that need it.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Which list of steps it comes from.
    pub kind: PhaseKind,
    /// The nodes, in declared order, with their `needs`.
    pub graph: DiGraph<Node, ()>,
    /// Every `for_each` expansion in this phase, for concurrency and `max_failures`.
    pub fan_outs: Vec<FanOut>,
}

/// A step (or group) expanded over items.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    /// `roll`, or `outer[a].inner` for nested ones.
    pub path: String,
    /// Most instances in flight at once (none: no limit of its own).
    pub concurrency: Option<u64>,
    /// Failed instances tolerated before no further instance starts.
    pub max_failures: u64,
    /// The step says `on_failure: continue`: failed instances are recorded, do not count
    /// toward `max_failures`, and the rollout goes on.
    pub continue_on_failure: bool,
    /// The instances' keys (`us-east-op-2` for `roll[us-east-op-2]`), in item order.
    pub instances: Vec<String>,
}

/// A node's place in a fan-out: which fan-out, and which of its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceRef {
    /// Index into the phase's `fan_outs`.
    pub fan_out: usize,
    /// Index into that fan-out's `instances`.
    pub instance: usize,
}

/// One concrete unit of work.
#[derive(Debug, Clone)]
pub struct Node {
    /// Unique in the phase: `roll[us-east-op-2].restore`.
    pub name: String,
    /// The step as written.
    pub step: Arc<Step>,
    /// Ids of the scopes around the step, outermost first (for `defaults` lookups and names).
    pub scope: String,
    /// The innermost `for_each` item and its index, if any.
    pub item: Option<(Value, usize)>,
    /// The fan-outs this node belongs to, outermost first.
    pub instances: Vec<InstanceRef>,
    /// The groups around the step, outermost first. Their `when` must hold too, and their
    /// `timeout`, `retry`, `on_failure` and `resume` apply where the step sets none.
    pub groups: Vec<Arc<Step>>,
    /// For each step id the templates of this step read: the nodes whose outputs it means.
    /// A fan-out seen from outside gives several nodes, read as a list.
    pub inputs: BTreeMap<String, Vec<NodeIndex>>,
    /// Timeout, retry, gate and failure handling after `defaults`.
    pub settings: Settings,
    /// Set when the step's `for_each` reads a step output: this node stands for all of its
    /// instances until the executor expands it.
    pub deferred: Option<Deferred>,
    /// For an undo node ([`undo_node`]): the node it undoes, whose context it has.
    pub undoes: Option<NodeIndex>,
    /// Set for the nodes of a called plan (`plan: NAME`): what their templates see instead of
    /// the run's plan.
    pub call: Option<Arc<Called>>,
}

/// A call of a plan (`plan: NAME`), as its nodes see it: the called plan's own template
/// context, `defaults`, `connections` and hosts, and the secrets it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// The called plan's name.
    pub plan: String,
    /// The call's node path (`notify`): its nodes are named under it (`notify.slack`).
    pub at: String,
    /// `params` (the called plan's, bound), `inventory`, `plan` (the called plan) and `run`
    /// (this run).
    pub context: Value,
    /// The called plan's `defaults`.
    pub defaults: Defaults,
    /// The called plan's named connections.
    pub connections: Entries<Connection>,
    /// Connection details of the called plan's hosts (after `--inventory`).
    pub hosts: BTreeMap<String, HostDetails>,
    /// Each secret of the called plan, by its name there, with the name of the run's secret
    /// that gives its value.
    pub secrets: Vec<(String, String)>,
}

/// A `for_each` over a step output, expanded by the executor once that output exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    /// The `for_each` template, e.g. `{{ steps.deployments.outputs.ids }}`.
    pub for_each: String,
}

impl Node {
    /// The `when` conditions that must all hold: the enclosing groups', then the step's.
    pub fn conditions(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .filter_map(|g| g.when.as_ref())
            .chain(self.step.when.as_ref())
            .map(|w| w.value.as_str())
    }
}

/// The settings that apply to a node after `defaults`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Per-attempt timeout.
    pub timeout: Option<std::time::Duration>,
    /// How failed attempts are retried (one attempt when nothing says otherwise).
    pub retry: RetryPolicy,
    /// The `until` gate, if the step has one.
    pub gate: Option<Gate>,
    /// What a failure does to the run.
    pub on_failure: OnFailure,
    /// What `resume` does with an attempt a crash left unknown.
    pub resume: ResumePolicy,
}

/// A `retry` with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u64,
    /// Wait before the first retry.
    pub delay: std::time::Duration,
    /// How the wait grows.
    pub backoff: Backoff,
    /// Cap on the wait.
    pub max_delay: Option<std::time::Duration>,
    /// Spread waits randomly by up to half their length.
    pub jitter: bool,
}

impl RetryPolicy {
    /// Wait before attempt `n` (2 for the first retry), before jitter.
    pub fn delay_before(&self, attempt: u64) -> std::time::Duration {
        let retries = attempt.saturating_sub(2);
        let d = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => self
                .delay
                .saturating_mul(2u32.saturating_pow(retries.min(31) as u32)),
        };
        self.max_delay.map_or(d, |m| d.min(m))
    }
}

/// An `until` gate: the action repeats every `interval` until the condition holds or the
/// `deadline` passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The jq condition over the action's result.
    pub until: String,
    /// Time between tries.
    pub interval: std::time::Duration,
    /// How long the gate may take in all.
    pub deadline: std::time::Duration,
}

/// A gate's `interval` when the plan gives none.
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// A gate's `deadline` when the plan gives none.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);
/// A retry's `delay` when the plan gives none.
pub const DEFAULT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Compiles a validated plan. `inventory` overrides or adds groups (from `--inventory`).
pub fn compile(
    plan: &Plan,
    params: Map<String, Value>,
    extra_inventory: &BTreeMap<String, Group>,
    run: &RunInfo,
) -> Result<CompiledPlan, Error> {
    compile_limited(plan, params, extra_inventory, run, &[])
}

/// [`compile`], with the run narrowed to the hosts `limit` names (`--limit`): `for_each`
/// instances over other hosts of the inventory are left out ([`Limit`]).
pub fn compile_limited(
    plan: &Plan,
    params: Map<String, Value>,
    extra_inventory: &BTreeMap<String, Group>,
    run: &RunInfo,
    limit: &[String],
) -> Result<CompiledPlan, Error> {
    compile_with(plan, params, extra_inventory, run, limit, &Library::new())
}

/// [`compile_limited`], with the plans `plan` may call (`plan: NAME`): each call's steps are
/// expanded under the call's name with the called plan's params, bound from the call's
/// `params` rendered in this plan's context.
pub fn compile_with(
    plan: &Plan,
    params: Map<String, Value>,
    extra_inventory: &BTreeMap<String, Group>,
    run: &RunInfo,
    limit: &[String],
    library: &Library,
) -> Result<CompiledPlan, Error> {
    let (groups, hosts) = merge_inventory(&plan.inventory, extra_inventory);
    let inventory = crate::inventory::expand(&groups).map_err(|e| Error::Compile {
        message: format!("{e} (the plan's groups and `--inventory`'s together)"),
        span: None,
    })?;
    let limit = Limit::new(limit, &inventory).map_err(|message| Error::Compile {
        message,
        span: None,
    })?;
    let context = json!({
        "params": params,
        "inventory": inventory_context(&inventory, &hosts),
        "plan": {
            "name": plan.name.value,
            "severity": plan.severity.as_ref().map(|s| s.value.as_str()),
        },
        "run": {
            "id": run.id,
            "reason": run.reason,
            "status": "running",
            "user": run.user,
            "started_at": run.started_at,
        },
    });
    // Counted before anything is expanded: nested `for_each` multiply.
    if let (total, Some((step, nodes))) = size::planned_nodes(plan, &context)
        && total > size::MAX_NODES
    {
        return Err(Error::Compile {
            message: size::too_many(total, step, nodes),
            span: Some(step.id.span),
        });
    }
    let phases = [
        (PhaseKind::Main, &plan.steps),
        (PhaseKind::OnFailure, &plan.on_failure),
        (PhaseKind::Finally, &plan.finally),
    ]
    .into_iter()
    .map(|(kind, steps)| {
        let outer = Outer {
            library,
            extra_inventory,
        };
        phase(plan, &context, &limit, &outer, kind, steps)
    })
    .collect::<Result<Vec<Phase>, _>>()?;
    // The count above sees a call as one node; the called plans' nodes are counted here.
    let total: usize = phases.iter().map(|p| p.graph.node_count()).sum();
    if !library.is_empty() && total as u64 > size::MAX_NODES {
        return Err(Error::Compile {
            message: format!(
                "the plan and the plans it calls would compile to {total} nodes; a run may have at most {}",
                size::MAX_NODES
            ),
            span: None,
        });
    }
    Ok(CompiledPlan {
        name: plan.name.value.clone(),
        description: plan.description.as_ref().map(|d| d.value.clone()),
        severity: plan.severity.as_ref().map(|s| s.value),
        confirm: plan.confirm.as_ref().map(|c| c.value.clone()),
        budget: plan
            .budget
            .as_ref()
            .map(|b| b.value.resolve(&Value::Object(params.clone()))),
        lock: plan
            .lock
            .as_ref()
            .map_or(plan.name.value.clone(), |l| l.value.clone()),
        params,
        inventory,
        hosts,
        defaults: plan.defaults.clone(),
        connections: plan.connections.clone(),
        secrets: plan.secrets.clone(),
        context,
        phases,
        limit,
    })
}

/// The plan's inventory with the extra groups on top (a group of the same name replaces the
/// plan's), as written (children not expanded yet), and the details of hosts written as
/// objects (a file's over the plan's).
pub fn merge_inventory(
    plan_inventory: &Entries<Group>,
    extra_inventory: &BTreeMap<String, Group>,
) -> (BTreeMap<String, Group>, BTreeMap<String, HostDetails>) {
    let mut inventory: BTreeMap<String, Group> = BTreeMap::new();
    let mut hosts: BTreeMap<String, HostDetails> = BTreeMap::new();
    let groups = plan_inventory
        .iter()
        .map(|(k, v)| (k.value.clone(), v))
        .chain(extra_inventory.iter().map(|(k, v)| (k.clone(), v)));
    for (group, written) in groups {
        for h in written.hosts() {
            if let Host::Detailed(d) = h {
                hosts.insert(d.name.value.clone(), d.clone());
            }
        }
        inventory.insert(group, written.clone());
    }
    (inventory, hosts)
}

/// The `inventory` of the template context: each group's host names, and `hosts`, the record
/// of every host ([`crate::inventory::host_record`]).
pub(crate) fn inventory_context(
    groups: &BTreeMap<String, Vec<String>>,
    details: &BTreeMap<String, HostDetails>,
) -> Value {
    let mut records = Map::new();
    for name in groups.values().flatten().chain(details.keys()) {
        if !records.contains_key(name) {
            records.insert(
                name.clone(),
                crate::inventory::host_record(name, details.get(name)),
            );
        }
    }
    let mut out: Map<String, Value> = groups.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    out.insert(
        crate::inventory::RESERVED_GROUP.into(),
        Value::Object(records),
    );
    Value::Object(out)
}

/// One phase's steps expanded into its graph.
fn phase(
    plan: &Plan,
    context: &Value,
    limit: &Limit,
    outer: &Outer<'_>,
    kind: PhaseKind,
    steps: &[Step],
) -> Result<Phase, Error> {
    let mut builder = Builder {
        defaults: &plan.defaults,
        context,
        limit,
        library: outer.library,
        extra_inventory: outer.extra_inventory,
        call: None,
        calling: vec![plan.name.value.clone()],
        graph: DiGraph::new(),
        fan_outs: Vec::new(),
        shared: HashMap::new(),
    };
    let outside = HashMap::new();
    let frame = Frame {
        scope: String::new(),
        groups: Vec::new(),
        item: None,
        instances: Vec::new(),
        outside: &outside,
    };
    builder.scope(steps, false, &frame)?;
    Ok(Phase {
        kind,
        graph: builder.graph,
        fan_outs: builder.fan_outs,
    })
}

/// What the steps of a scope are expanded within.
struct Frame<'f> {
    /// Name prefix of the nodes: `roll[us-east-op-2].`.
    scope: String,
    groups: Vec<Arc<Step>>,
    item: Option<(Value, usize)>,
    instances: Vec<InstanceRef>,
    /// Nodes of steps outside this scope, by id, that steps here may read.
    outside: &'f HashMap<String, Vec<NodeIndex>>,
}

/// The nodes one step expanded into.
#[derive(Default)]
struct Expanded {
    nodes: Vec<NodeIndex>,
    /// Nodes that wait on nothing inside the step (they take the step's `needs`).
    sources: Vec<NodeIndex>,
    /// Nodes nothing inside the step waits on (the step's dependants wait on them).
    sinks: Vec<NodeIndex>,
}

/// What the plan is compiled with besides itself: the plans it may call, and `--inventory`.
struct Outer<'p> {
    library: &'p Library,
    extra_inventory: &'p BTreeMap<String, Group>,
}

struct Builder<'p> {
    defaults: &'p Defaults,
    context: &'p Value,
    /// `--limit`: instances over other hosts are left out.
    limit: &'p Limit,
    /// The plans that may be called.
    library: &'p Library,
    extra_inventory: &'p BTreeMap<String, Group>,
    /// Inside a call: the called plan's context, defaults and secrets.
    call: Option<Arc<Called>>,
    /// The plans being expanded, the run's first: a plan met again is a cycle.
    calling: Vec<String>,
    graph: DiGraph<Node, ()>,
    fan_outs: Vec<FanOut>,
    /// One shared copy of each step, whatever the number of its instances.
    shared: HashMap<*const Step, Arc<Step>>,
}

impl Builder<'_> {
    /// The `defaults` of the plan being expanded (a called plan's inside a call).
    fn defaults(&self) -> &Defaults {
        self.call.as_ref().map_or(self.defaults, |c| &c.defaults)
    }

    /// The template context of the plan being expanded (a called plan's inside a call).
    fn context(&self) -> &Value {
        self.call.as_ref().map_or(self.context, |c| &c.context)
    }

    /// A call of a plan: its steps, expanded under the call's name (`notify.slack`) with the
    /// called plan's params, context, defaults and secrets. Its `on_failure` applies to its
    /// nodes where they set none, as a group's does.
    fn call(
        &mut self,
        step: &Step,
        name: &Spanned<String>,
        base: String,
        frame: &Frame<'_>,
    ) -> Result<Expanded, Error> {
        let err = |message: String| Error::Compile {
            message,
            span: Some(name.span),
        };
        let id = &step.id.value;
        let library = self.library;
        let callee = library.plan(&name.value).ok_or_else(|| {
            err(format!(
                "step `{id}` calls plan `{}`, and it is not there to call",
                name.value
            ))
        })?;
        if self.calling.contains(&name.value) {
            return Err(err(format!(
                "plans call each other in a cycle: {} → {}",
                self.calling.join(" → "),
                name.value
            )));
        }
        let renderer = template::Renderer::new();
        let given = crate::calls::render_params(step, self.context(), &renderer)
            .map_err(|why| err(format!("step `{id}`: a param does not render: {why}")))?;
        let input = ParamInput {
            file: given,
            cli: Vec::new(),
        };
        let params = bind_params(callee, &input)
            .map_err(|e| err(format!("step `{id}` calls plan `{}`: {e}", name.value)))?;
        let mut secrets = Vec::new();
        for called in callee.secrets.names() {
            let Some(given) = step.secrets.get(called) else {
                return Err(err(format!(
                    "step `{id}` does not give plan `{}` its secret `{called}`",
                    name.value
                )));
            };
            // Inside a call, the caller's name is itself a called one: the run's name for it.
            let run_name = match &self.call {
                None => Some(given.value.clone()),
                Some(c) => c
                    .secrets
                    .iter()
                    .find(|(n, _)| *n == given.value)
                    .map(|(_, r)| r.clone()),
            }
            .ok_or_else(|| {
                err(format!(
                    "step `{id}` gives `{}`, which is not a secret here",
                    given.value
                ))
            })?;
            secrets.push((called.to_string(), run_name));
        }
        let (callee_groups, hosts) = merge_inventory(&callee.inventory, self.extra_inventory);
        let inventory = crate::inventory::expand(&callee_groups).map_err(|e| {
            err(format!(
                "{e} (plan `{}`'s groups and `--inventory`'s together)",
                name.value
            ))
        })?;
        let context = json!({
            "params": params,
            "inventory": inventory_context(&inventory, &hosts),
            "plan": {
                "name": callee.name.value,
                "severity": callee.severity.as_ref().map(|s| s.value.as_str()),
            },
            "run": self.context()["run"].clone(),
        });
        let called = Arc::new(Called {
            plan: name.value.clone(),
            at: base.clone(),
            context,
            defaults: callee.defaults.clone(),
            connections: callee.connections.clone(),
            hosts,
            secrets,
        });
        let groups = vec![self.share(step)];
        let outer_call = self.call.replace(called);
        self.calling.push(name.value.clone());
        let outside = HashMap::new();
        let inner = Frame {
            scope: format!("{base}."),
            groups,
            item: None,
            instances: frame.instances.clone(),
            outside: &outside,
        };
        let result = self.scope(&callee.steps, false, &inner);
        self.calling.pop();
        self.call = outer_call;
        result
    }

    /// Expands the steps of one scope and wires what each waits for: its `needs`, else the
    /// step above it (unless the scope is a `parallel: true` group). A step waits for the
    /// sinks of the steps before it, so for a whole group or every instance of a `for_each`.
    fn scope(
        &mut self,
        steps: &[Step],
        parallel: bool,
        frame: &Frame<'_>,
    ) -> Result<Expanded, Error> {
        let before = waits_indexes(steps, parallel);
        let order = topological(steps, &before)?;
        let mut done: Vec<Option<Expanded>> = steps.iter().map(|_| None).collect();
        let mut readable: HashMap<String, Vec<NodeIndex>> = frame.outside.clone();
        for &i in &order {
            let step = &steps[i];
            let expanded = self.step(step, frame, &readable)?;
            for before in before[i].iter().filter_map(|&j| done[j].as_ref()) {
                for &from in &before.sinks {
                    for &to in &expanded.sources {
                        self.graph.update_edge(from, to, ());
                    }
                }
            }
            readable.insert(step.id.value.clone(), expanded.nodes.clone());
            done[i] = Some(expanded);
        }
        let awaited: HashSet<usize> = before.iter().flatten().copied().collect();
        let mut all = Expanded::default();
        for (i, e) in done.iter().enumerate() {
            let Some(e) = e else { continue };
            all.nodes.extend(&e.nodes);
            if before[i].is_empty() {
                all.sources.extend(&e.sources);
            }
            if !awaited.contains(&i) {
                all.sinks.extend(&e.sinks);
            }
        }
        Ok(all)
    }

    fn step(
        &mut self,
        step: &Step,
        frame: &Frame<'_>,
        readable: &HashMap<String, Vec<NodeIndex>>,
    ) -> Result<Expanded, Error> {
        let base = format!("{}{}", frame.scope, step.id.value);
        if let ActionRef::Call(name) = step.action() {
            return self.call(step, name, base, frame);
        }
        let items = match &step.for_each {
            None => None,
            Some(ForEach::List(items)) => Some(items.iter().map(|n| n.to_json()).collect()),
            Some(ForEach::Template(t)) if reads_step_outputs(&t.value) => {
                // Known only at run time.
                let node = self.node(step, base.clone(), frame, readable, frame.item.clone());
                let idx = self.graph.add_node(Node {
                    deferred: Some(Deferred {
                        for_each: t.value.clone(),
                    }),
                    ..node
                });
                return Ok(Expanded {
                    nodes: vec![idx],
                    sources: vec![idx],
                    sinks: vec![idx],
                });
            }
            Some(ForEach::Template(t)) => Some(self.eval_for_each(t, frame)?),
        };
        let Some(items) = items else {
            return self.instance(
                step,
                base,
                frame,
                readable,
                frame.item.clone(),
                &frame.instances,
            );
        };
        self.fan_out(step, base, frame, readable, items)
    }

    /// One instance of `step` per item.
    fn fan_out(
        &mut self,
        step: &Step,
        base: String,
        frame: &Frame<'_>,
        readable: &HashMap<String, Vec<NodeIndex>>,
        items: Vec<Value>,
    ) -> Result<Expanded, Error> {
        let items: Vec<Value> = items.into_iter().filter(|i| self.limit.keeps(i)).collect();
        let fan_out = self.fan_outs.len();
        let keys = instance_keys(&items);
        self.fan_outs.push(FanOut {
            path: base.clone(),
            concurrency: step.concurrency.as_ref().map(|c| c.value),
            max_failures: step.max_failures.as_ref().map_or(0, |m| m.value),
            continue_on_failure: step
                .on_failure
                .as_ref()
                .is_some_and(|o| o.value == OnFailure::Continue),
            instances: keys.clone(),
        });
        let mut all = Expanded::default();
        for (index, (item, key)) in items.into_iter().zip(keys).enumerate() {
            let mut instances = frame.instances.clone();
            instances.push(InstanceRef {
                fan_out,
                instance: index,
            });
            let e = self.instance(
                step,
                format!("{base}[{key}]"),
                frame,
                readable,
                Some((item, index)),
                &instances,
            )?;
            all.nodes.extend(e.nodes);
            all.sources.extend(e.sources);
            all.sinks.extend(e.sinks);
        }
        Ok(all)
    }

    /// One run of a step: a node, or for a group, its steps as a scope of their own.
    fn instance(
        &mut self,
        step: &Step,
        name: String,
        frame: &Frame<'_>,
        readable: &HashMap<String, Vec<NodeIndex>>,
        item: Option<(Value, usize)>,
        instances: &[InstanceRef],
    ) -> Result<Expanded, Error> {
        if let ActionRef::Group(steps) = step.action() {
            let mut groups = frame.groups.clone();
            groups.push(self.share(step));
            let inner = Frame {
                scope: format!("{name}."),
                groups,
                item,
                instances: instances.to_vec(),
                outside: readable,
            };
            return self.scope(steps, step.is_parallel(), &inner);
        }
        let mut node = self.node(step, name, frame, readable, item);
        node.instances = instances.to_vec();
        let idx = self.graph.add_node(node);
        Ok(Expanded {
            nodes: vec![idx],
            sources: vec![idx],
            sinks: vec![idx],
        })
    }

    fn node(
        &mut self,
        step: &Step,
        name: String,
        frame: &Frame<'_>,
        readable: &HashMap<String, Vec<NodeIndex>>,
        item: Option<(Value, usize)>,
    ) -> Node {
        let mut reads = step_reads(step);
        for g in &frame.groups {
            if let Some(w) = &g.when {
                reads.extend(
                    crate::jq::step_references(&w.value)
                        .into_iter()
                        .map(|(id, _, _)| id),
                );
            }
        }
        let inputs = reads
            .into_iter()
            .filter_map(|id| readable.get(&id).map(|nodes| (id, nodes.clone())))
            .collect();
        let settings = settings(
            self.defaults(),
            step,
            &frame.groups,
            &self.context()["params"],
        );
        Node {
            name,
            step: self.share(step),
            scope: frame.scope.clone(),
            item,
            instances: frame.instances.clone(),
            groups: frame.groups.clone(),
            inputs,
            settings,
            deferred: None,
            undoes: None,
            call: self.call.clone(),
        }
    }

    /// One shared copy of a step for all its nodes.
    fn share(&mut self, step: &Step) -> Arc<Step> {
        self.shared
            .entry(step as *const Step)
            .or_insert_with(|| Arc::new(step.clone()))
            .clone()
    }

    fn eval_for_each(&self, t: &Template, frame: &Frame<'_>) -> Result<Vec<Value>, Error> {
        let mut ctx = self.context().clone();
        if let Some((item, index)) = &frame.item {
            ctx["item"] = item.clone();
            ctx["index"] = json!(index);
        }
        match template::eval_single(&t.value, &ctx) {
            Ok(Some(Value::Array(items))) => Ok(items),
            Ok(Some(Value::Null)) => Ok(Vec::new()),
            Ok(Some(other)) => Err(Error::Compile {
                message: format!(
                    "`for_each` yields {}, not a list",
                    crate::params::describe_value(&other)
                ),
                span: Some(t.span),
            }),
            Ok(None) => Err(Error::Compile {
                message: "`for_each` must be a single `{{ expression }}`".into(),
                span: Some(t.span),
            }),
            Err(why) => Err(Error::Compile {
                message: format!("`for_each`: {why}"),
                span: Some(t.span),
            }),
        }
    }
}

/// True when a template reads `steps.*`: its value is known only at run time.
fn reads_step_outputs(text: &str) -> bool {
    !template::step_ids(text).is_empty()
}

/// Names for the instances of a fan-out: the item itself when it is a short scalar and unique,
/// else its position.
fn instance_keys(items: &[Value]) -> Vec<String> {
    let keys: Vec<Option<String>> = items
        .iter()
        .map(|v| match v {
            Value::String(s)
                if !s.is_empty() && s.len() <= 64 && !s.contains(['[', ']', '.', '\n']) =>
            {
                Some(s.clone())
            }
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 64 && !s.contains(['[', ']', '.', '\n']))
                .map(str::to_string),
            _ => None,
        })
        .collect();
    let unique = keys.iter().flatten().collect::<HashSet<_>>().len() == items.len();
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| k.filter(|_| unique).unwrap_or_else(|| i.to_string()))
        .collect()
}

/// The steps of a scope in an order where each comes after what it waits for (`before`, from
/// [`waits_indexes`]), and otherwise in the order they are written (so node indices, and the
/// dry run, follow the file).
fn topological(steps: &[Step], before: &[Vec<usize>]) -> Result<Vec<usize>, Error> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut waiting: Vec<usize> = before.iter().map(Vec::len).collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, js) in before.iter().enumerate() {
        for &j in js {
            dependants[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..steps.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependants[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    match (0..steps.len()).find(|&i| waiting[i] > 0) {
        Some(i) => Err(Error::Compile {
            message: format!("steps form a cycle at `{}`", steps[i].id.value),
            span: Some(steps[i].id.span),
        }),
        None => Ok(order),
    }
}

/// A deferred node's instances, added to `graph` once its `for_each` items are known.
pub struct Expansion {
    /// The new nodes.
    pub nodes: Vec<NodeIndex>,
    /// The new nodes nothing else among them waits on: the deferred node's dependants wait
    /// on these.
    pub sinks: Vec<NodeIndex>,
}

/// Expands the deferred node `at` over `items` into `graph` and `fan_outs` (the executor's
/// copies of a phase). The new nodes get the names compilation would have given them.
pub fn expand_deferred(
    plan: &CompiledPlan,
    graph: &mut DiGraph<Node, ()>,
    fan_outs: &mut Vec<FanOut>,
    at: NodeIndex,
    items: Vec<Value>,
) -> Result<Expansion, Error> {
    let node = graph[at].clone();
    let library = Library::new();
    let extra_inventory = BTreeMap::new();
    let mut builder = Builder {
        defaults: &plan.defaults,
        context: &plan.context,
        limit: &plan.limit,
        library: &library,
        extra_inventory: &extra_inventory,
        call: node.call.clone(),
        calling: vec![plan.name.clone()],
        graph: std::mem::take(graph),
        fan_outs: std::mem::take(fan_outs),
        shared: HashMap::new(),
    };
    let readable: HashMap<String, Vec<NodeIndex>> = node.inputs.clone().into_iter().collect();
    let mut groups = node.groups.clone();
    if matches!(node.step.action(), ActionRef::Group(_)) {
        groups.push(node.step.clone());
    }
    let frame = Frame {
        scope: node.scope.clone(),
        groups,
        item: node.item.clone(),
        instances: node.instances.clone(),
        outside: &readable,
    };
    let step = node.step.as_ref().clone();
    let base = node.name.clone();
    let result = builder.fan_out(&step, base, &frame, &readable, items);
    *graph = builder.graph;
    *fan_outs = builder.fan_outs;
    let e = result?;
    Ok(Expansion {
        nodes: e.nodes,
        sinks: e.sinks,
    })
}

/// The node that undoes `idx`: named `<node>.undo`, the step's `undo` action in place of its
/// own, with the node's item, host and settings (no gate: an undo is judged by its result
/// only), and the node's own outputs readable as `steps.<id>.outputs`. It belongs to no
/// fan-out instance: it runs when its instance has failed. `None` when the step has no
/// `undo`.
pub fn undo_node(graph: &DiGraph<Node, ()>, idx: NodeIndex) -> Option<Node> {
    let node = &graph[idx];
    let step = node.step.undo_step()?;
    let mut inputs = node.inputs.clone();
    inputs.insert(node.step.id.value.clone(), vec![idx]);
    let mut settings = node.settings.clone();
    settings.gate = None;
    settings.on_failure = OnFailure::Abort;
    Some(Node {
        name: format!("{}.undo", node.name),
        step: Arc::new(step),
        scope: node.scope.clone(),
        item: node.item.clone(),
        instances: Vec::new(),
        groups: node.groups.clone(),
        inputs,
        settings,
        deferred: None,
        undoes: Some(idx),
        call: node.call.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::PhaseKind;

    #[test]
    fn phase_kinds_are_written_as_the_plan_keys_in_every_form() {
        for (kind, name) in [
            (PhaseKind::Main, "steps"),
            (PhaseKind::OnFailure, "on_failure"),
            (PhaseKind::Finally, "finally"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<PhaseKind>().unwrap(), kind);
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::json!(name));
            assert_eq!(serde_json::from_value::<PhaseKind>(json).unwrap(), kind);
        }
    }

    #[test]
    fn phase_kinds_order_as_they_run() {
        assert!(PhaseKind::Main < PhaseKind::OnFailure);
        assert!(PhaseKind::OnFailure < PhaseKind::Finally);
        let mut sorted = PhaseKind::ALL;
        sorted.sort();
        assert_eq!(sorted, PhaseKind::ALL);
        assert_eq!(
            PhaseKind::ALL,
            [PhaseKind::Main, PhaseKind::OnFailure, PhaseKind::Finally]
        );
    }

    #[test]
    fn unknown_phase_names_are_refused() {
        for name in ["main", "Steps", "on-failure", ""] {
            let err = name.parse::<PhaseKind>().unwrap_err();
            assert!(err.to_string().contains("is not a phase"), "{err}");
        }
        assert!(serde_json::from_str::<PhaseKind>("\"main\"").is_err());
    }
}
