//! `plans/operator-rollback.yaml` on the fleet's nine operator hosts: node by node, a missing
//! backup that stops the rollout, a node that fails after its restore and is put back in
//! service by its stop's `undo`, and Ctrl-C in the middle.

use std::time::Duration;

use super::{BROKEN, Fleet, FleetEvent, GOOD, operators, wait_until};

fn region(r: &str) -> Vec<String> {
    operators()
        .into_iter()
        .filter(|h| h.starts_with(r))
        .collect()
}

fn slack_texts(fleet: &Fleet) -> Vec<String> {
    fleet.api()["slack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"]["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn operator_events(fleet: &Fleet) -> Vec<(String, String, String)> {
    fleet
        .events()
        .into_iter()
        .filter(|e| e.unit == "zeitwork-operator")
        .map(
            |FleetEvent {
                 host,
                 verb,
                 version,
                 ..
             }| (host, verb, version),
        )
        .collect()
}

/// `--limit`: the rollback of the one node that actually crashed. The fleet's `systemctl` log
/// shows that only that host was stopped and started; its region's other nodes, in the plan's
/// `for_each`, were not touched.
#[test]
fn a_limited_operator_rollback_touches_only_the_named_node() {
    let fleet = Fleet::take();
    let nodes = region("eu-west");
    let crashed = nodes[1].clone();
    let ran = fleet.run(&[
        "run",
        "operator-rollback",
        "--param",
        "region=eu-west",
        "--limit",
        &crashed,
        "--reason",
        "one node crash-loops",
        "--yes",
    ]);
    ran.assert_code(0);
    assert_eq!(
        operator_events(&fleet),
        [
            (crashed.clone(), "stop".to_string(), BROKEN.to_string()),
            (crashed.clone(), "start".to_string(), GOOD.to_string()),
        ]
    );
    for host in nodes.iter().filter(|h| **h != crashed) {
        assert_eq!(
            fleet.units(host)["zeitwork-operator"],
            BROKEN,
            "{host} untouched"
        );
    }
    let report = fleet.run(&["report", &fleet.the_run()]);
    assert!(
        report
            .stdout
            .contains(&format!("- **Limited to**: `{crashed}`")),
        "{}",
        report.stdout
    );
}

#[test]
fn operator_rollback_restores_one_region_node_by_node_and_leaves_the_others_alone() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "operator-rollback",
        "--param",
        "region=eu-west",
        "--reason",
        "operator 4.2.0 crash-loops",
        "--yes",
    ]);
    ran.assert_code(0);

    for host in region("eu-west") {
        let units = fleet.units(&host);
        assert_eq!(units["zeitwork-operator"], GOOD, "{host}");
        // Only the operator was rolled back on it.
        assert_eq!(units["zeitwork-load-balancer"], BROKEN, "{host}");
        assert_eq!(units["zeitwork-edge-proxy"], BROKEN, "{host}");
        assert_eq!(
            fleet.host_file(&host, "/usr/local/bin/zeitwork-operator"),
            fleet.host_file(&host, "/usr/local/bin/zeitwork-operator.backup"),
            "{host}: binary restored"
        );
        assert_eq!(
            fleet.host_file(&host, "/etc/zeitwork/operator.env"),
            fleet.host_file(&host, "/etc/zeitwork/operator.env.backup"),
            "{host}: config restored"
        );
    }
    for host in region("us-east").into_iter().chain(region("ap-south")) {
        assert_eq!(
            fleet.units(&host)["zeitwork-operator"],
            BROKEN,
            "{host} untouched"
        );
        assert!(
            fleet
                .host_file(&host, "/etc/zeitwork/operator.env")
                .unwrap()
                .contains(BROKEN),
            "{host} config untouched"
        );
    }
    // One node at a time, in the inventory's order: each is stopped and started before the
    // next is stopped.
    let expected: Vec<(String, String, String)> = region("eu-west")
        .into_iter()
        .flat_map(|h| {
            [
                (h.clone(), "stop".to_string(), BROKEN.to_string()),
                (h, "start".to_string(), GOOD.to_string()),
            ]
        })
        .collect();
    assert_eq!(operator_events(&fleet), expected);
    // The health gate passed on every node, and Slack heard how it ended.
    let run = fleet.the_run();
    let statuses = fleet.node_statuses(&run);
    for host in region("eu-west") {
        assert_eq!(statuses[&format!("roll[{host}].healthy")], "succeeded");
    }
    assert_eq!(
        slack_texts(&fleet),
        ["Operator rollback succeeded (region: eu-west, by root): operator 4.2.0 crash-loops"]
    );
}

#[test]
fn a_missing_backup_stops_the_rollout_at_that_node_and_finally_reports_the_failure() {
    let fleet = Fleet::take();
    fleet.remove_host_file("us-east-op-2", "/usr/local/bin/zeitwork-operator.backup");
    let ran = fleet.run(&[
        "run",
        "operator-rollback",
        "--param",
        "region=us-east",
        "--reason",
        "operator 4.2.0 crash-loops",
        "--yes",
    ]);
    ran.assert_code(1);
    assert!(
        ran.stderr
            .contains("no backup found: /usr/local/bin/zeitwork-operator.backup"),
        "{}",
        ran.stderr
    );

    // The first node is rolled back; the second (stopped, then no backup: the seed's order)
    // is started again by its stop's undo, with its binary as it was; the third is never
    // touched.
    assert_eq!(fleet.units("us-east-op-1")["zeitwork-operator"], GOOD);
    assert_eq!(fleet.units("us-east-op-2")["zeitwork-operator"], BROKEN);
    assert!(
        fleet
            .host_file("us-east-op-2", "/usr/local/bin/zeitwork-operator")
            .unwrap()
            .contains(BROKEN)
    );
    assert_eq!(fleet.units("us-east-op-3")["zeitwork-operator"], BROKEN);
    assert_eq!(
        operator_events(&fleet),
        [
            ("us-east-op-1".into(), "stop".into(), BROKEN.into()),
            ("us-east-op-1".into(), "start".into(), GOOD.into()),
            ("us-east-op-2".into(), "stop".into(), BROKEN.into()),
            ("us-east-op-2".into(), "start".into(), BROKEN.into()),
        ]
    );
    let run = fleet.the_run();
    let statuses = fleet.node_statuses(&run);
    assert_eq!(statuses["roll[us-east-op-2].restore-binary"], "failed");
    assert_eq!(statuses["roll[us-east-op-2].stop.undo"], "succeeded");
    fleet.assert_never_attempted(&run, "roll[us-east-op-3]");
    assert_eq!(statuses["notify.post"], "succeeded");
    assert_eq!(
        slack_texts(&fleet),
        ["Operator rollback failed (region: us-east, by root): operator 4.2.0 crash-loops"]
    );
}

/// Makes the copy of `host`'s config backup fail: its config is a directory that holds a
/// directory of the backup's name (`cp` cannot put the file there).
fn break_config_restore(fleet: &Fleet, host: &str) {
    let config = fleet
        .dir
        .join("hosts")
        .join(host)
        .join("root/etc/operator.env");
    std::fs::remove_file(&config).unwrap();
    std::fs::create_dir_all(config.join("operator.env.backup")).unwrap();
}

/// The rollback of us-east-op-2 fails after its binary was restored (its config backup
/// cannot be copied): the stop's `undo` starts the operator again, so the host is back in
/// service (with the restored binary), and the rollout stops there. `--no-undo` leaves it
/// stopped.
#[test]
fn undo_puts_a_host_whose_rollback_failed_after_its_restore_back_in_service() {
    let fleet = Fleet::take();
    let host = "us-east-op-2";
    break_config_restore(&fleet, host);
    let ran = fleet.run(&[
        "run",
        "operator-rollback",
        "--param",
        "region=us-east",
        "--reason",
        "operator 4.2.0 crash-loops",
        "--yes",
    ]);
    ran.assert_code(1);
    assert!(
        ran.stderr.contains(&format!(
            "undoing roll[{host}]: roll[{host}].stop (in this order)"
        )),
        "{}",
        ran.stderr
    );
    // The fleet's systemctl log: op-2 was stopped, then started by the undo, with the binary
    // its restore step had put back.
    assert_eq!(
        operator_events(&fleet),
        [
            ("us-east-op-1".into(), "stop".into(), BROKEN.into()),
            ("us-east-op-1".into(), "start".into(), GOOD.into()),
            (host.into(), "stop".into(), BROKEN.into()),
            (host.into(), "start".into(), GOOD.into()),
        ]
    );
    assert_eq!(
        fleet.units(host)["zeitwork-operator"],
        GOOD,
        "back in service"
    );
    assert_eq!(fleet.units("us-east-op-3")["zeitwork-operator"], BROKEN);
    let run = fleet.the_run();
    let statuses = fleet.node_statuses(&run);
    assert_eq!(
        statuses[&format!("roll[{host}].restore-binary")],
        "succeeded"
    );
    assert_eq!(statuses[&format!("roll[{host}].restore-config")], "failed");
    assert_eq!(statuses[&format!("roll[{host}].stop.undo")], "succeeded");
    // Completed nodes are not undone.
    assert!(!statuses.contains_key("roll[us-east-op-1].stop.undo"));
    fleet.assert_never_attempted(&run, "roll[us-east-op-3]");
    let show = fleet.show(&run);
    assert_eq!(show["undos"][0]["scope"], format!("roll[{host}]"));
    let report = fleet.run(&["report", &run]);
    assert!(
        report.stdout.contains(&format!(
            "`roll[{host}].stop.undo` (undoes `roll[{host}].stop`)"
        )),
        "{}",
        report.stdout
    );

    // The same failure with --no-undo: the host is left stopped, and the journal says so.
    fleet.reset();
    break_config_restore(&fleet, host);
    let before = fleet.run_ids();
    let ran = fleet.run(&[
        "run",
        "operator-rollback",
        "--param",
        "region=us-east",
        "--reason",
        "operator 4.2.0 crash-loops",
        "--yes",
        "--no-undo",
    ]);
    ran.assert_code(1);
    assert!(!fleet.units(host).contains_key("zeitwork-operator"));
    let run = fleet
        .run_ids()
        .into_iter()
        .find(|r| !before.contains(r))
        .unwrap();
    let show = fleet.show(&run);
    assert_eq!(show["undos"][0]["skipped"], true);
}

#[test]
fn ctrl_c_during_the_rollout_lets_the_node_in_flight_finish_then_finally_notifies() {
    let fleet = Fleet::take();
    let child = fleet.spawn(&[
        "run",
        "operator-rollback",
        "--reason",
        "operator 4.2.0 crash-loops",
        "--yes",
    ]);
    // The first node's operator is back up: the plan now waits 5s (`settle`) before checking.
    wait_until(Duration::from_secs(60), "us-east-op-1 to restart", || {
        operator_events(&fleet).len() >= 2
    });
    child.signal(libc::SIGINT);
    let out = child.wait_with_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");

    // Nothing new started after Ctrl-C: the node in flight finished its settle, no other node
    // was touched, and `finally` still told Slack.
    assert_eq!(operator_events(&fleet).len(), 2, "{:?}", fleet.events());
    assert_eq!(fleet.units("us-east-op-1")["zeitwork-operator"], GOOD);
    for host in operators().iter().skip(1) {
        assert_eq!(fleet.units(host)["zeitwork-operator"], BROKEN, "{host}");
    }
    assert_eq!(
        slack_texts(&fleet),
        ["Operator rollback cancelled (region: all, by root): operator 4.2.0 crash-loops"]
    );
}
