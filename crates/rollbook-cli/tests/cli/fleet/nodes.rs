//! `plans/node-agent-rollback.yaml` on the fleet's workers, with the platform API's drains:
//! drain, wait until no VM is left, restore, enable, one worker at a time; and a drain that
//! never finishes.

use serde_json::Value;

use super::{BROKEN, Fleet, GOOD, workers};

fn region(r: &str) -> Vec<String> {
    workers().into_iter().filter(|h| h.starts_with(r)).collect()
}

fn node<'a>(api: &'a Value, host: &str) -> &'a Value {
    api["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostname"] == host)
        .unwrap_or_else(|| panic!("the API has no node {host}"))
}

/// (hostname, action) of every drain and enable, in order.
fn history(api: &Value) -> Vec<(String, String)> {
    api["node_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hostname"].as_str().unwrap().to_string(),
                h["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn node_agent_rollback_drains_restores_and_enables_each_worker_of_a_region_in_turn() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "node-agent-rollback",
        "--param",
        "region=ap-south",
        "--reason",
        "node-agent 4.2.0 leaks VMs",
        "--yes",
    ]);
    ran.assert_code(0);

    for host in region("ap-south") {
        assert_eq!(fleet.units(&host)["zeitwork-node-agent"], GOOD, "{host}");
        assert_eq!(
            fleet.host_file(&host, "/usr/local/bin/zeitwork-node-agent"),
            fleet.host_file(&host, "/usr/local/bin/zeitwork-node-agent.backup"),
        );
    }
    for host in region("us-east").into_iter().chain(region("eu-west")) {
        assert_eq!(
            fleet.units(&host)["zeitwork-node-agent"],
            BROKEN,
            "{host} untouched"
        );
    }
    let api = fleet.api();
    // Every known worker was drained, then enabled again before the next was drained. The
    // sixth is not known to the API: rolled back without drain or enable, as in the seed.
    let known: Vec<String> = region("ap-south").into_iter().take(5).collect();
    let expected: Vec<(String, String)> = known
        .iter()
        .flat_map(|h| [(h.clone(), "drain".into()), (h.clone(), "enable".into())])
        .collect();
    assert_eq!(history(&api), expected);
    for host in &known {
        let n = node(&api, host);
        assert_eq!(n["status"], "active", "{host}: {n}");
        assert_eq!(n["active_instances"], 0, "{host}: {n}");
    }
    // The wait really waited: the first worker had VMs left at the first poll.
    let run = fleet.the_run();
    let shown = fleet.show(&run);
    let drained = shown["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "roll[ap-south-worker-1].drained")
        .unwrap();
    assert_eq!(drained["status"], "succeeded");
    assert!(drained["attempts"].as_u64().unwrap() >= 2, "{drained}");
    let statuses = fleet.node_statuses(&run);
    assert_eq!(statuses["roll[ap-south-worker-6].drain"], "skipped");
    assert_eq!(statuses["roll[ap-south-worker-6].enable"], "skipped");
    assert_eq!(statuses["roll[ap-south-worker-6].restore"], "succeeded");
    // The agent was stopped only after its node's wait for the drain had ended.
    let stop = fleet
        .events()
        .into_iter()
        .find(|e| e.host == "ap-south-worker-1" && e.verb == "stop")
        .unwrap();
    let waited_until = drained["finished_at"].as_str().unwrap();
    assert!(
        stop.at.as_str() > waited_until,
        "{stop:?} before {waited_until}"
    );
}

#[test]
fn a_drain_that_never_finishes_fails_at_its_deadline_and_stops_the_rollout() {
    let fleet = Fleet::take();
    fleet.api_post("/_fleet/stuck/us-east-worker-1");
    let ran = fleet.run(&[
        "run",
        "node-agent-rollback",
        "--param",
        "region=us-east",
        "--param",
        "drain_deadline=3s",
        "--reason",
        "node-agent 4.2.0 leaks VMs",
        "--yes",
    ]);
    ran.assert_code(1);
    assert!(
        ran.stderr.contains("roll[us-east-worker-1].drained FAILED"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("3s"),
        "the deadline is named: {}",
        ran.stderr
    );

    // The stuck node stays drained (no VM is scheduled onto a half-rolled-back agent), its
    // agent untouched; no other worker was drained or touched.
    let api = fleet.api();
    assert_eq!(
        history(&api),
        [("us-east-worker-1".to_string(), "drain".to_string())]
    );
    assert_eq!(node(&api, "us-east-worker-1")["status"], "draining");
    assert_eq!(node(&api, "us-east-worker-1")["active_instances"], 3);
    for host in workers() {
        assert_eq!(fleet.units(&host)["zeitwork-node-agent"], BROKEN, "{host}");
    }
    assert!(fleet.events().is_empty(), "{:?}", fleet.events());
    fleet.assert_never_attempted(&fleet.the_run(), "roll[us-east-worker-2]");
}
