//! The plans that touch one service, the configs or the database: service isolation (with
//! DNS and with a drain), configuration recovery, the database migration rollback (both
//! methods) and point-in-time recovery.

use super::{BROKEN, Fleet, GOOD, operators, workers};

fn dns(fleet: &Fleet, host: &str) -> String {
    std::fs::read_to_string(fleet.dir.join("dns").join(host))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn service_isolation_takes_each_edge_proxy_out_of_dns_rolls_it_back_and_puts_it_back() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "service-isolation-rollback",
        "--param",
        "service=edge-proxy",
        "--param",
        "nodes=us-east-op-1,us-east-op-2",
        "--param",
        "version=4.2.0",
        "--reason",
        "edge-proxy 4.2.0 drops websockets",
        "--yes",
    ]);
    ran.assert_code(0);

    for host in ["us-east-op-1", "us-east-op-2"] {
        let units = fleet.units(host);
        assert_eq!(units["zeitwork-edge-proxy"], GOOD, "{host}");
        assert_eq!(
            units["zeitwork-operator"], BROKEN,
            "{host}: other services untouched"
        );
        assert_eq!(dns(&fleet, host), "in", "{host} is back in rotation");
    }
    assert_eq!(fleet.units("us-east-op-3")["zeitwork-edge-proxy"], BROKEN);
    // Out of DNS, stopped, started, back in DNS: one node after the other.
    let seen: Vec<String> = fleet
        .events()
        .into_iter()
        .map(|e| format!("{} {} {}", e.host, e.verb, e.unit))
        .collect();
    assert_eq!(
        seen,
        [
            "us-east-op-1 dns-remove us-east-op-1",
            "us-east-op-1 stop zeitwork-edge-proxy",
            "us-east-op-1 start zeitwork-edge-proxy",
            "us-east-op-1 dns-add us-east-op-1",
            "us-east-op-2 dns-remove us-east-op-2",
            "us-east-op-2 stop zeitwork-edge-proxy",
            "us-east-op-2 start zeitwork-edge-proxy",
            "us-east-op-2 dns-add us-east-op-2",
        ]
    );
    assert!(fleet.api()["node_history"].as_array().unwrap().is_empty());
}

#[test]
fn service_isolation_of_a_node_agent_drains_the_node_and_enables_it_again() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "service-isolation-rollback",
        "--param",
        "service=node-agent",
        "--param",
        "nodes=eu-west-worker-3",
        "--reason",
        "node-agent 4.2.0 on one worker",
        "--yes",
    ]);
    ran.assert_code(0);
    assert_eq!(fleet.units("eu-west-worker-3")["zeitwork-node-agent"], GOOD);
    let api = fleet.api();
    let actions: Vec<String> = api["node_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["hostname"].as_str().unwrap(),
                h["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        ["eu-west-worker-3 drain", "eu-west-worker-3 enable"]
    );
    assert_eq!(
        dns(&fleet, "eu-west-worker-3"),
        "in",
        "DNS is not touched for agents"
    );
}

#[test]
fn config_recovery_puts_the_days_backup_on_every_node_in_the_backup() {
    let fleet = Fleet::take();
    let backups = fleet.dir.join("backups/configs").display().to_string();
    let backup_dir = format!("backup_dir={backups}");

    // A day without a backup: nothing is touched.
    let ran = fleet.run(&[
        "run",
        "config-recovery",
        "--param",
        "recovery_date=2026-11-27",
        "--param",
        &backup_dir,
        "--reason",
        "bad env pushed",
        "--yes",
    ]);
    ran.assert_code(1);
    assert!(
        ran.stderr.contains("No backup found for 2026-11-27"),
        "{}",
        ran.stderr
    );
    assert!(
        fleet
            .host_file("us-east-op-1", "/etc/zeitwork/operator.env")
            .unwrap()
            .contains(BROKEN)
    );

    let ran = fleet.run(&[
        "run",
        "config-recovery",
        "--param",
        "recovery_date=2026-11-29",
        "--param",
        &backup_dir,
        "--reason",
        "bad env pushed",
        "--yes",
    ]);
    ran.assert_code(0);
    for host in operators() {
        for svc in ["operator", "load-balancer", "edge-proxy"] {
            let env = fleet
                .host_file(&host, &format!("/etc/zeitwork/{svc}.env"))
                .unwrap();
            assert!(
                env.contains("RECOVERED_FROM=2026-11-29"),
                "{host} {svc}: {env}"
            );
        }
    }
    for host in workers() {
        let env = fleet
            .host_file(&host, "/etc/zeitwork/node-agent.env")
            .unwrap();
        if host == "ap-south-worker-6" {
            // Not in that day's backup: skipped, as in the seed.
            assert!(env.contains(BROKEN), "{host}: {env}");
        } else {
            assert!(env.contains("RECOVERED_FROM=2026-11-29"), "{host}: {env}");
        }
    }
    // Configs only: no service was restarted. The unpacked copy is gone (`finally`).
    assert!(fleet.events().is_empty(), "{:?}", fleet.events());
    let run = fleet
        .run_ids()
        .into_iter()
        .find(|id| fleet.show(id)["status"] == "succeeded")
        .unwrap();
    assert!(!std::path::Path::new(&format!("/tmp/zeitwork-configs-{run}")).exists());
    let statuses = fleet.node_statuses(&run);
    assert_eq!(statuses["deploy[ap-south-worker-6].upload"], "skipped");
}

fn migrated_back(fleet: &Fleet) {
    let columns = fleet.columns();
    for gone in ["projects.new_column", "instances.new_name"] {
        assert!(
            !columns.iter().any(|c| c == gone),
            "{gone} is still there: {columns:?}"
        );
    }
    for back in ["instances.old_name", "nodes.deprecated_field"] {
        assert!(
            columns.iter().any(|c| c == back),
            "{back} is missing: {columns:?}"
        );
    }
    assert_eq!(
        fleet.sql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
        "0039,0040,0041"
    );
    assert_eq!(
        fleet.sql(
            "SELECT string_agg(id || '=' || coalesce(deprecated_field, 'null'), ',' ORDER BY id) FROM nodes"
        ),
        "1=rack-a,2=rack-b,3=null,4=rack-d,5=null"
    );
}

#[test]
fn the_database_migration_rollback_reverts_0042_by_sql_and_by_the_migration_tool() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "database-migration-rollback",
        "--reason",
        "migration 0042 broke instance listing",
        "--yes",
    ]);
    ran.assert_code(0);
    migrated_back(&fleet);
    let run = fleet.the_run();
    assert_eq!(
        fleet.show(&run)["nodes"][0]["outputs"]["version"],
        "0041",
        "the last safe version"
    );
    let journal = std::fs::read_to_string(
        fleet
            .state_dir()
            .join("runs")
            .join(&run)
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(
        !journal.contains(&fleet.var("DATABASE_URL")),
        "the URL is a secret"
    );

    fleet.reset();
    let ran = fleet.run(&[
        "run",
        "database-migration-rollback",
        "--param",
        "method=tool",
        "--reason",
        "migration 0042 broke instance listing",
        "--yes",
    ]);
    ran.assert_code(0);
    assert!(
        ran.stderr.contains("rolled back migration 0042"),
        "{}",
        ran.stderr
    );
    migrated_back(&fleet);
}

#[test]
fn point_in_time_recovery_files_one_restore_request_and_waits_for_a_person() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "database-pitr",
        "--param",
        "recovery_time=2026-11-30 08:59:00",
        "--reason",
        "rows deleted by the 09:00 deploy",
        "--yes",
    ]);
    ran.assert_code(0);
    let log = std::fs::read_to_string(fleet.dir.join("outbox/pscale.log")).unwrap();
    // One request, the time as one word.
    assert_eq!(
        log,
        "'database' 'restore-request' 'create' 'zeitwork-production' '--restore-to' '2026-11-30 08:59:00' '--branch' 'recovery-branch'\n"
    );
    let run = fleet.the_run();
    assert_eq!(fleet.node_statuses(&run)["switch-over"], "succeeded");
}
