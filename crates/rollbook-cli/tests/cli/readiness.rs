//! `rollbook readiness` and the last successes of `rollbook list`, over a team's state
//! directory written by hand (`team.rs`), and the inventory a real run records.

use crate::team::{PRODUCTION, Run, STAGING, Team, day, team, without_dates};

const WEB_STAGING: &str = "20261202-074501-0a01";
const WEB_PRODUCTION: &str = "20261115-074501-0a02";
const WEB_NO_INVENTORY: &str = "20261016-074501-0a04";

/// Each plan's (ready, why, run id) in `readiness --format json`.
fn verdicts(json: &serde_json::Value) -> Vec<(String, bool, String, Option<String>)> {
    json["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["plan"].as_str().unwrap().to_string(),
                p["ready"].as_bool().unwrap(),
                p["why"].as_str().unwrap().to_string(),
                p["run"]["run_id"].as_str().map(String::from),
            )
        })
        .collect()
}

fn v(
    plan: &str,
    ready: bool,
    why: &str,
    run: Option<&str>,
) -> (String, bool, String, Option<String>) {
    (plan.into(), ready, why.into(), run.map(String::from))
}

#[test]
fn readiness_of_every_plan_names_each_one_not_ready_and_exits_1() {
    let team = team();
    let ran = team.rollbook(&["readiness"]);
    ran.assert_code(1);
    insta::assert_snapshot!("readiness__all", without_dates(&ran.stdout));
    assert_eq!(
        ran.stderr,
        "error: 4 of 5 plans are not ready (--max-age 30d)\n"
    );
    let json = team.rollbook(&["readiness", "--format", "json"]);
    json.assert_code(1);
    let json = json.json();
    assert_eq!(json["ready"], false);
    assert_eq!(json["max_age"], "30d");
    assert_eq!(json["max_age_s"], 30 * 86_400);
    assert_eq!(json["inventory"], serde_json::Value::Null);
    assert_eq!(
        verdicts(&json),
        [
            v(
                "cache-rollback",
                false,
                "plan_changed",
                Some("20261130-074501-0c01")
            ),
            v(
                "db-rollback",
                false,
                "too_old",
                Some("20261026-074501-0b01")
            ),
            v("dns-rollback", false, "never_run", None),
            v(
                "queue-rollback",
                false,
                "only_limited",
                Some("20261203-074501-0d01")
            ),
            v("web-rollback", true, "ready", Some(WEB_STAGING)),
        ]
    );
    let web = &json["plans"][4];
    assert_eq!(web["run"]["inventory"], "staging");
    assert_eq!(web["run"]["inventory_path"], STAGING);
    let age = web["age_s"].as_u64().unwrap();
    assert!((3 * 86_400..4 * 86_400).contains(&age), "{age}");
    let ended = team.ended(&Run::new("x", "x").days_ago(3));
    assert_eq!(
        web["message"],
        format!(
            "last success {} (3d ago, run {WEB_STAGING}, staging)",
            day(ended)
        ),
    );
}

#[test]
fn readiness_of_ready_plans_exits_0() {
    let team = team();
    let ran = team.rollbook(&["readiness", "web-rollback"]);
    ran.assert_code(0);
    assert_eq!(ran.stderr, "ok: 1 plan is ready (--max-age 30d)\n");
    insta::assert_snapshot!("readiness__ready", without_dates(&ran.stdout));
    let json = team.rollbook(&["readiness", "web-rollback", "--format", "json"]);
    json.assert_code(0);
    assert_eq!(json.json()["ready"], true);
    // Found by path too.
    team.rollbook(&["readiness", "plans/web-rollback.yaml"])
        .assert_code(0);
}

#[test]
fn readiness_too_old_under_a_shorter_max_age() {
    let team = team();
    let ran = team.rollbook(&["readiness", "web-rollback", "--max-age", "2d"]);
    ran.assert_code(1);
    let row = ran.stdout.lines().nth(1).unwrap();
    assert!(
        row.starts_with("web-rollback  no     last success 3d ago, on "),
        "{row}"
    );
    assert!(
        row.ends_with(&format!(
            "(run {WEB_STAGING}, staging): older than --max-age 2d"
        )),
        "{row}"
    );
    assert_eq!(
        ran.stderr,
        "error: 1 of 1 plan is not ready (--max-age 2d)\n"
    );
    // 40 days old, 30 allowed, 41 is enough.
    team.rollbook(&["readiness", "db-rollback"]).assert_code(1);
    team.rollbook(&["readiness", "db-rollback", "--max-age", "41d"])
        .assert_code(0);
}

#[test]
fn readiness_per_inventory_by_stem_or_path() {
    let team = team();
    let ran = team.rollbook(&["readiness", "--inventory", "staging"]);
    ran.assert_code(1);
    insta::assert_snapshot!("readiness__staging", without_dates(&ran.stdout));
    assert_eq!(
        ran.stderr,
        "error: 4 of 5 plans are not ready (--max-age 30d, --inventory staging)\n"
    );

    let json = team
        .rollbook(&["readiness", "--inventory", "production", "--format", "json"])
        .json();
    assert_eq!(json["inventory"], "production");
    assert_eq!(
        verdicts(&json),
        [
            v("cache-rollback", false, "never_run", None),
            v("db-rollback", false, "never_run", None),
            v("dns-rollback", false, "never_run", None),
            v("queue-rollback", false, "never_run", None),
            // The failed run of a day ago does not undo the success of 20 days ago.
            v("web-rollback", true, "ready", Some(WEB_PRODUCTION)),
        ]
    );
    assert_eq!(json["plans"][0]["message"], "never run in production");

    for inventory in ["production", PRODUCTION] {
        team.rollbook(&["readiness", "web-rollback", "--inventory", inventory])
            .assert_code(0);
    }
    // Another file of the same stem is not the inventory the run was given.
    team.rollbook(&[
        "readiness",
        "web-rollback",
        "--inventory",
        "elsewhere/production.yaml",
    ])
    .assert_code(1);
    team.rollbook(&[
        "readiness",
        "web-rollback",
        "--inventory",
        "production",
        "--max-age",
        "7d",
    ])
    .assert_code(1);
    // `-`: the runs without an inventory; the only one is 50 days old.
    let ran = team.rollbook(&[
        "readiness",
        "web-rollback",
        "--inventory",
        "-",
        "--format",
        "json",
    ]);
    ran.assert_code(1);
    assert_eq!(
        verdicts(&ran.json()),
        [v("web-rollback", false, "too_old", Some(WEB_NO_INVENTORY))]
    );
}

#[test]
fn readiness_sees_a_plan_changed_since_its_last_success() {
    let team = team();
    team.rollbook(&["readiness", "web-rollback"]).assert_code(0);
    team.plan("web-rollback", 2);
    let ran = team.rollbook(&["readiness", "web-rollback"]);
    ran.assert_code(1);
    let row = ran.stdout.lines().nth(1).unwrap();
    let ended = team.ended(&Run::new("x", "x").days_ago(3));
    assert_eq!(
        row,
        format!(
            "web-rollback  no     plan changed since its last success on {} (run {WEB_STAGING}, staging)",
            day(ended)
        )
    );
    // Back to the text that was practised: ready again.
    team.plan("web-rollback", 1);
    team.rollbook(&["readiness", "web-rollback"]).assert_code(0);
}

#[test]
fn readiness_does_not_count_a_limited_run() {
    let team = team();
    let ran = team.rollbook(&["readiness", "queue-rollback"]);
    ran.assert_code(1);
    assert!(
        ran.stdout.contains(
            "only runs with --limit succeeded, the last on "
        ) && ran.stdout.contains(
            "(run 20261203-074501-0d01, --limit web-1): a limited run does not practise the whole plan"
        ),
        "{}",
        ran.stdout
    );
    // The same run without the limit makes it ready.
    team.add(
        Run::new("20261204-074501-0d03", "queue-rollback")
            .days_ago(1)
            .inventory(STAGING),
    );
    team.rollbook(&["readiness", "queue-rollback"])
        .assert_code(0);
}

#[test]
fn readiness_with_no_state_dir_is_never_run() {
    let team = team();
    let ran = crate::rollbook_in(team.path())
        .args([
            "--plans-dir",
            "plans",
            "--state-dir",
            "nowhere",
            "readiness",
            "web-rollback",
        ])
        .output()
        .unwrap();
    let ran = crate::Ran::from(ran);
    ran.assert_code(1);
    assert!(
        ran.stdout.contains("web-rollback  no     never run\n"),
        "{}",
        ran.stdout
    );
}

#[test]
fn readiness_usage_errors_exit_2() {
    let team = team();
    for args in [
        &["readiness", "web-rolback"][..],
        &["readiness", "--max-age", "a while"],
        &["readiness", "--format", "yaml"],
        &["readiness", "plans/missing.yaml"],
    ] {
        let ran = team.rollbook(args);
        ran.assert_code(2);
        assert!(ran.stderr.contains("error"), "{args:?}: {}", ran.stderr);
    }
    let ran = team.rollbook(&["readiness", "web-rolback"]);
    assert!(
        ran.stderr.contains("did you mean `web-rollback`?"),
        "{}",
        ran.stderr
    );
    // No plan to check is not a pass.
    let empty = Team::new();
    let ran = empty.rollbook(&["readiness"]);
    ran.assert_code(2);
    assert!(ran.stderr.contains("no plans in plans"), "{}", ran.stderr);
}

#[test]
fn list_shows_the_last_success_per_inventory() {
    let team = team();
    let ran = team.rollbook(&["list"]);
    ran.assert_code(0);
    insta::assert_snapshot!("list__last_success", without_dates(&ran.stdout));
    let json = team.rollbook(&["list", "--format", "json"]);
    json.assert_code(0);
    let json = json.json();
    let rows = json["plans"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    let web = row("web-rollback");
    let successes = web["last_success"].as_array().unwrap();
    let found: Vec<(&str, &str, bool)> = successes
        .iter()
        .map(|s| {
            (
                s["inventory"].as_str().unwrap(),
                s["run_id"].as_str().unwrap(),
                s["plan_changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("-", WEB_NO_INVENTORY, false),
            ("production", WEB_PRODUCTION, false),
            ("staging", WEB_STAGING, false),
        ]
    );
    assert_eq!(successes[1]["inventory_path"], PRODUCTION);
    assert_eq!(successes[0]["inventory_path"], serde_json::Value::Null);
    let ended = team.ended(&Run::new("x", "x").days_ago(20));
    assert_eq!(successes[1]["finished_at"], ended.to_string());
    let cache = row("cache-rollback");
    assert_eq!(cache["last_success"][0]["plan_changed"], true);
    // A limited run is no practice of the whole plan; a cancelled one no success.
    assert_eq!(row("queue-rollback")["last_success"], serde_json::json!([]));
    assert_eq!(row("dns-rollback")["last_success"], serde_json::json!([]));
    assert_eq!(
        row("db-rollback")["last_success"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn list_without_a_state_dir_lists_the_plans_alone() {
    let team = team();
    let ran = crate::rollbook_in(team.path())
        .args(["--plans-dir", "plans", "--state-dir", "nowhere", "list"])
        .output()
        .unwrap();
    let ran = crate::Ran::from(ran);
    ran.assert_code(0);
    assert_eq!(ran.stdout.lines().count(), 6, "{}", ran.stdout);
    assert!(!ran.stdout.contains("succeeded"), "{}", ran.stdout);
    assert!(!team.path().join("nowhere").exists());
}

/// A real run records the inventory as given; `list` and `readiness` go by its stem.
#[test]
fn list_and_readiness_read_the_inventory_a_real_run_recorded() {
    let team = Team::new();
    team.plan("web-rollback", 1);
    std::fs::create_dir(team.path().join("inventories")).unwrap();
    std::fs::write(team.path().join(STAGING), "web: [web-1, web-2]\n").unwrap();
    team.rollbook(&[
        "run",
        "web-rollback",
        "--reason",
        "practice",
        "--inventory",
        STAGING,
        "--yes",
    ])
    .assert_code(0);
    let ids = crate::run_ids_in(&team.path().join("state"));
    assert_eq!(ids.len(), 1);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            team.path()
                .join("state/runs")
                .join(&ids[0])
                .join("run.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["inventory"], true);
    assert_eq!(meta["inventory_path"], STAGING);

    let list = team.rollbook(&["list"]);
    list.assert_code(0);
    let line = list.stdout.lines().nth(2).unwrap_or_default();
    assert!(
        line.starts_with("  staging: succeeded ") && line.contains(&format!("run {})", ids[0])),
        "{}",
        list.stdout
    );
    team.rollbook(&["readiness", "--inventory", "staging"])
        .assert_code(0);
    team.rollbook(&["readiness", "--inventory", "production"])
        .assert_code(1);
}
