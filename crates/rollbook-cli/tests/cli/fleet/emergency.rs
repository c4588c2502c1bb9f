//! `plans/emergency-platform-rollback.yaml` on the whole fleet: run once without a break,
//! then again killed with SIGKILL in the middle and resumed, and the two fleets compared.

use std::collections::BTreeMap;
use std::time::Duration;

use rollbook_exec::{Event, NodeStatus};

use super::{BROKEN, Fleet, FleetEvent, GOOD, operators, wait_until, workers};

const RUN: &[&str] = &[
    "run",
    "emergency-platform-rollback",
    "--reason",
    "4.2.0 upgrade: operators crash-loop",
    "--yes",
];

/// How many times each (host, verb, unit, version) happened.
fn tally(events: &[FleetEvent]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(format!("{} {} {} {}", e.host, e.verb, e.unit, e.version))
            .or_default() += 1;
    }
    out
}

/// Where the first and last events of `verb` on `unit` are in the fleet's log.
fn span(events: &[FleetEvent], verb: &str, unit: &str) -> (usize, usize) {
    let at: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.verb == verb && e.unit == unit)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "no {verb} of {unit}");
    (at[0], *at.last().unwrap())
}

/// The fleet as an emergency rollback must leave it, checked field by field.
fn assert_rolled_back(fleet: &Fleet) {
    for host in operators() {
        let units = fleet.units(&host);
        for svc in ["operator", "load-balancer", "edge-proxy"] {
            let unit = format!("zeitwork-{svc}");
            assert_eq!(
                units.get(&unit).map(String::as_str),
                Some(GOOD),
                "{host} {unit}"
            );
            assert_eq!(
                fleet.host_file(&host, &format!("/etc/zeitwork/{svc}.env")),
                fleet.host_file(&host, &format!("/etc/zeitwork/{svc}.env.backup")),
                "{host} {svc}.env"
            );
        }
    }
    for host in workers() {
        assert_eq!(fleet.units(&host)["zeitwork-node-agent"], GOOD, "{host}");
        assert_eq!(
            fleet.host_file(&host, "/usr/local/bin/zeitwork-node-agent"),
            fleet.host_file(&host, "/usr/local/bin/zeitwork-node-agent.backup"),
        );
    }
    assert_eq!(
        fleet.sql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
        "0039,0040,0041",
        "the migration tool rolled the database back"
    );
    // The seed's order: edge proxies stop first (traffic halts), then everything else; then
    // operators start, then load balancers, then node agents, and edge proxies last.
    let events = fleet.events();
    let (_, edge_stopped) = span(&events, "stop", "zeitwork-edge-proxy");
    let (first_other_stop, _) = span(&events, "stop", "zeitwork-operator");
    assert!(edge_stopped < first_other_stop, "{events:#?}");
    let order = [
        "zeitwork-operator",
        "zeitwork-load-balancer",
        "zeitwork-node-agent",
        "zeitwork-edge-proxy",
    ];
    for pair in order.windows(2) {
        let (_, last) = span(&events, "start", pair[0]);
        let (first, _) = span(&events, "start", pair[1]);
        assert!(
            last < first,
            "{} started before every {} was up",
            pair[1],
            pair[0]
        );
    }
    // Every service was stopped once and started once, on the broken and the good version.
    for (event, count) in tally(&events) {
        assert_eq!(count, 1, "{event} happened {count} times");
    }
    assert_eq!(events.len(), (9 * 3 + 18) * 2);
}

#[test]
fn the_emergency_rollback_killed_mid_way_resumes_to_the_same_fleet_as_an_uninterrupted_run() {
    let fleet = Fleet::take();

    // 1. Without a break.
    fleet.run(RUN).assert_code(0);
    assert_rolled_back(&fleet);
    let run = fleet.the_run();
    let statuses = fleet.node_statuses(&run);
    for host in operators() {
        assert_eq!(statuses[&format!("operators-healthy[{host}]")], "succeeded");
    }
    let slack = fleet.api()["slack"].clone();
    assert_eq!(slack.as_array().unwrap().len(), 1);
    let text = slack[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "EMERGENCY platform rollback succeeded (by root, run {run})"
        )),
        "{text}"
    );
    let uninterrupted = fleet.snapshot();
    let uninterrupted_events = tally(&fleet.events());

    // 2. Killed while phase 4 restores binaries host by host, then resumed.
    fleet.reset();
    assert_eq!(fleet.units("us-east-op-1")["zeitwork-operator"], BROKEN);
    let mut child = fleet.spawn(RUN);
    let new_run = || fleet.run_ids().into_iter().find(|i| *i != run);
    wait_until(Duration::from_secs(60), "the second run to start", || {
        new_run().is_some()
    });
    let id = new_run().unwrap();
    let dir = fleet.state_dir().join("runs").join(&id);
    let restored = |events: &[Event]| {
        events
            .iter()
            .filter(|e| {
                matches!(e, Event::NodeFinished { node, status: NodeStatus::Succeeded, .. }
                    if node.starts_with("restore-binaries["))
            })
            .count()
    };
    wait_until(Duration::from_secs(60), "phase 4 to be under way", || {
        restored(&rollbook_exec::journal::read_events(&dir).unwrap_or_default()) >= 5
    });
    child.kill().unwrap(); // SIGKILL: no finally, no last words
    child.wait().unwrap();

    let before = rollbook_exec::journal::read_events(&dir).unwrap();
    let replay = rollbook_exec::resume::replay(&before);
    assert_eq!(replay.finished, None, "the run was cut off");
    let done: Vec<String> = replay.prior.done.keys().map(|k| k.node.clone()).collect();
    assert!(done.iter().any(|n| n == "rollback-database"), "{done:?}");
    assert!(restored(&before) < 27, "killed too late to prove anything");

    let resumed = fleet.run(&["resume", &id, "--yes"]);
    resumed.assert_code(0);

    // Nothing the journal had as succeeded ran again.
    let after = rollbook_exec::journal::read_events(&dir).unwrap();
    let resumed_at = after
        .iter()
        .position(|e| matches!(e, Event::RunResumed { .. }))
        .expect("a RunResumed event");
    for e in &after[resumed_at..] {
        if let Event::AttemptStarted { phase, node, .. } = e {
            assert!(
                !(phase == "steps" && done.contains(node)),
                "{node} had succeeded and ran again"
            );
        }
    }
    // The same fleet as without the crash, and the same service starts and stops, once each.
    assert_rolled_back(&fleet);
    assert_eq!(tally(&fleet.events()), uninterrupted_events);
    assert_eq!(fleet.snapshot(), uninterrupted);
}
