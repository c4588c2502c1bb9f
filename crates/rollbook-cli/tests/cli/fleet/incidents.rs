//! Telling people and checking the platform: `notify-rollback` (Slack, email, Statuspage)
//! and the read-only `post-rollback-verification` checklist, on a broken and on a healthy
//! fleet.

use std::collections::BTreeMap;

use super::{Fleet, GOOD, operators, workers};

#[test]
fn notify_rollback_posts_to_slack_mails_the_team_and_opens_a_statuspage_incident() {
    let fleet = Fleet::take();
    let ran = fleet.run(&[
        "run",
        "notify-rollback",
        "--param",
        "status=complete",
        "--param",
        "reason=operator 4.2.0 crash-loops",
        "--param",
        "page_id=zeitwork",
        "--param",
        "statuspage_api=http://127.0.0.1:8080/statuspage",
        "--reason",
        "announce the operator rollback",
    ]);
    ran.assert_code(0);

    let api = fleet.api();
    let slack = api["slack"].as_array().unwrap();
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert_eq!(slack[0]["body"]["text"], "🔄 Platform Rollback complete");
    let block = slack[0]["body"]["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap();
    assert!(
        block.starts_with("*Status:* complete\n*Reason:* operator 4.2.0 crash-loops\n*Time:* "),
        "{block}"
    );
    let incidents = api["statuspage"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["page_id"], "zeitwork");
    assert_eq!(incidents[0]["body"]["incident"]["status"], "investigating");
    let mail = std::fs::read_to_string(fleet.dir.join("outbox/mail/001.txt")).unwrap();
    assert!(
        mail.starts_with(
            "To: ops-team@zeitwork.com\nSubject: Zeitwork Platform Rollback complete\n"
        ),
        "{mail}"
    );
    assert!(
        mail.contains("Reason: operator 4.2.0 crash-loops"),
        "{mail}"
    );

    // The webhook URL and the API key are secrets: nowhere in what the run wrote or printed.
    let run = fleet.the_run();
    let mut written = format!("{}{}", ran.stdout, ran.stderr);
    for entry in walk(&fleet.state_dir().join("runs").join(&run)) {
        written.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    for secret in ["SLACK_WEBHOOK_URL", "STATUSPAGE_API_KEY"] {
        assert!(!written.contains(&fleet.var(secret)), "{secret} leaked");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs the checklist: each node's status, and the exit code.
fn verify(fleet: &Fleet) -> (BTreeMap<String, String>, Option<i32>) {
    let ca = format!("ca_file={}", fleet.dir.join("tls/ca.pem").display());
    let before = fleet.run_ids();
    let ran = fleet.run(&[
        "run",
        "post-rollback-verification",
        "--param",
        &ca,
        "--reason",
        "after the rollback",
    ]);
    assert!(ran.code.is_some(), "{}", ran.stderr);
    let run = fleet
        .run_ids()
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap();
    (fleet.node_statuses(&run), ran.code)
}

fn failed(statuses: &BTreeMap<String, String>) -> Vec<&str> {
    statuses
        .iter()
        .filter(|(_, s)| *s == "failed")
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn verification_names_every_failing_check_on_a_broken_fleet_and_passes_on_a_healthy_one() {
    let fleet = Fleet::take();
    // As the failed upgrade left it (every service on 4.2.0), and one agent down.
    fleet.set_unit("eu-west-worker-4", "zeitwork-node-agent", None);
    let (statuses, code) = verify(&fleet);
    // Every check ran, and the checklist failed at its verdict, naming the failed checks.
    assert_eq!(code, Some(1), "{statuses:#?}");
    assert_eq!(
        failed(&statuses),
        [
            "checks.deployment-healthy[dep-1]",
            "checks.deployment-healthy[dep-2]",
            "checks.deployment-healthy[dep-3]",
            "checks.endpoint-8080",
            "checks.endpoint-8081",
            "checks.endpoint-8082",
            "checks.endpoint-8083",
            "checks.node-agent-running[eu-west-worker-4]",
            "verdict",
        ],
        "{statuses:#?}"
    );
    assert_eq!(statuses["checks.database"], "succeeded");

    // Everything rolled back and running: every check passes, the TLS one verified against
    // the fleet's CA.
    for host in operators() {
        for unit in [
            "zeitwork-operator",
            "zeitwork-load-balancer",
            "zeitwork-edge-proxy",
        ] {
            fleet.set_unit(&host, unit, Some(GOOD));
        }
    }
    for host in workers() {
        fleet.set_unit(&host, "zeitwork-node-agent", Some(GOOD));
    }
    let (statuses, code) = verify(&fleet);
    assert!(failed(&statuses).is_empty(), "{statuses:#?}");
    assert_eq!(code, Some(0), "{statuses:#?}");
    // Every check ran: 27 services on operators, 18 agents, the database, the deployment
    // list, its fan-out and the 3 deployments in it, 4 endpoints; and the verdict, skipped.
    assert_eq!(
        statuses.len(),
        9 * 3 + 18 + 1 + 1 + 1 + 3 + 4 + 1,
        "{statuses:#?}"
    );
    assert_eq!(statuses["verdict"], "skipped");
    assert_eq!(statuses["checks.deployment-healthy"], "succeeded");
}
