//! `rollbook runs` with its filters, over a team's state directory written by hand
//! (`team.rs`): what each filter keeps, in text and JSON, and the unreadable rows.

use crate::team::{Run, day, team, without_dates};

/// The run ids of `rollbook runs ARGS --format json`, in order (`unreadable` rows by id).
fn ids(team: &crate::team::Team, args: &[&str]) -> Vec<String> {
    let ran = team.rollbook(&[&["runs", "--format", "json"], args].concat());
    ran.assert_code(0);
    ran.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["meta"]["run_id"]
                .as_str()
                .or(r["run_id"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The run ids at the start of the text table's rows, in order.
fn text_ids(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

const UNREADABLE: &str = "20261201-000000-dead";

#[test]
fn runs_lists_every_run_with_its_host_then_the_unreadable() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    let ran = team.rollbook(&["runs"]);
    ran.assert_code(0);
    insta::assert_snapshot!("runs__all", without_dates(&ran.stdout));
    assert!(
        ran.stdout.starts_with("ID  ") && ran.stdout.contains("  HOST  "),
        "{}",
        ran.stdout
    );
    let all = ids(&team, &[]);
    assert_eq!(all.len(), 10);
    assert_eq!(all.last().map(String::as_str), Some(UNREADABLE));
    assert_eq!(text_ids(&ran.stdout), all);
}

#[test]
fn runs_filtered_by_plan_in_text_and_json() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    let newest_first = [
        "20261204-074501-0a03",
        "20261202-074501-0a01",
        "20261115-074501-0a02",
        "20261016-074501-0a04",
    ];
    assert_eq!(ids(&team, &["--plan", "web-rollback"]), newest_first);
    let ran = team.rollbook(&["runs", "--plan", "web-rollback"]);
    ran.assert_code(0);
    assert_eq!(text_ids(&ran.stdout), newest_first, "{}", ran.stdout);
    assert!(!ran.stdout.contains("unreadable"), "{}", ran.stdout);
    insta::assert_snapshot!("runs__plan", without_dates(&ran.stdout));
    assert!(
        ids(&team, &["--plan", "web"]).is_empty(),
        "names match whole"
    );
}

#[test]
fn runs_filtered_by_status() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    let cases: [(&str, &[&str]); 4] = [
        (
            "succeeded",
            &[
                "20261203-074501-0d01",
                "20261202-074501-0a01",
                "20261130-074501-0c01",
                "20261115-074501-0a02",
                "20261026-074501-0b01",
                "20261016-074501-0a04",
            ],
        ),
        ("failed", &["20261204-074501-0a03"]),
        ("cancelled", &["20261203-074501-0b02"]),
        ("unfinished", &["20261129-074501-0d02"]),
    ];
    for (status, expected) in cases {
        assert_eq!(
            ids(&team, &["--status", status]),
            expected,
            "--status {status}"
        );
    }
    let ran = team.rollbook(&["runs", "--status", "unfinished"]);
    assert!(
        ran.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(" unfinished ")),
        "{}",
        ran.stdout
    );
}

#[test]
fn runs_filtered_by_user() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    assert_eq!(
        ids(&team, &["--user", "lee"]),
        ["20261203-074501-0b02", "20261016-074501-0a04"]
    );
    let ran = team.rollbook(&["runs", "--user", "sam"]);
    ran.assert_code(0);
    insta::assert_snapshot!("runs__user", without_dates(&ran.stdout));
}

#[test]
fn runs_filtered_by_since_a_duration_a_day_or_a_time() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    // Started 1, 2, 2, 3, 5 and 6 days (and an hour) ago; the two of two days ago at the
    // same moment, so by id.
    assert_eq!(
        ids(&team, &["--since", "7d"]),
        [
            "20261204-074501-0a03",
            "20261203-074501-0d01",
            "20261203-074501-0b02",
            "20261202-074501-0a01",
            "20261130-074501-0c01",
            "20261129-074501-0d02",
        ]
    );
    assert_eq!(ids(&team, &["--since", "36h"]), ["20261204-074501-0a03"]);
    // A day alone is its start (UTC): ten days ago takes in everything after it.
    let ten_days_ago = Run::new("x", "x").days_ago(10);
    let day = day(team.started(&ten_days_ago));
    assert_eq!(ids(&team, &["--since", &day]).len(), 6, "--since {day}");
    // A time: four days ago leaves out the runs of five and six days ago.
    let four_days_ago = team.started(&Run::new("x", "x").days_ago(4)).to_string();
    assert_eq!(
        ids(&team, &["--since", &four_days_ago]).len(),
        4,
        "--since {four_days_ago}"
    );
    let ran = team.rollbook(&["runs", "--since", "7d"]);
    assert!(!ran.stdout.contains("unreadable"), "{}", ran.stdout);
}

#[test]
fn runs_limit_keeps_the_newest_after_the_filters() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    // `--limit` alone is no filter on facts: the unreadable run is still listed, after.
    assert_eq!(
        ids(&team, &["--limit", "1"]),
        ["20261204-074501-0a03", UNREADABLE]
    );
    let ran = team.rollbook(&["runs", "--limit", "1"]);
    assert_eq!(text_ids(&ran.stdout), ["20261204-074501-0a03", UNREADABLE]);
    assert_eq!(
        ids(
            &team,
            &[
                "--plan",
                "web-rollback",
                "--status",
                "succeeded",
                "--limit",
                "2"
            ]
        ),
        ["20261202-074501-0a01", "20261115-074501-0a02"]
    );
    assert_eq!(
        ids(&team, &["--user", "sam", "--since", "7d", "--limit", "9"]),
        [
            "20261204-074501-0a03",
            "20261203-074501-0d01",
            "20261129-074501-0d02"
        ]
    );
}

#[test]
fn runs_json_is_filtered_and_has_the_inventory_path() {
    let team = team();
    team.add_unreadable(UNREADABLE);
    let ran = team.rollbook(&["runs", "--plan", "db-rollback", "--format", "json"]);
    ran.assert_code(0);
    let json = ran.json();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{json}");
    assert_eq!(runs[0]["meta"]["run_id"], "20261203-074501-0b02");
    assert_eq!(runs[0]["status"], "cancelled");
    assert_eq!(
        runs[0]["meta"]["inventory_path"],
        "inventories/staging.yaml"
    );
    assert_eq!(runs[1]["status"], "succeeded");
    let lee = team
        .rollbook(&["runs", "--user", "lee", "--format", "json"])
        .json();
    assert!(
        lee["runs"][1]["meta"].get("inventory_path").is_none(),
        "a run without an inventory has none: {lee}"
    );
}

#[test]
fn runs_that_no_filter_keeps_say_so_and_exit_0() {
    let team = team();
    let ran = team.rollbook(&["runs", "--plan", "dns-rollback"]);
    ran.assert_code(0);
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.contains("none of the 9 runs"), "{}", ran.stderr);
    let ran = team.rollbook(&["runs", "--plan", "dns-rollback", "--format", "json"]);
    ran.assert_code(0);
    assert_eq!(ran.json(), serde_json::json!({"version": 1, "runs": []}));
}

#[test]
fn runs_filters_given_wrong_are_usage_errors() {
    let team = team();
    for args in [
        &["--status", "running"][..],
        &["--since", "last tuesday"],
        &["--since", "2026-13-45"],
        &["--limit", "0"],
        &["--limit", "-3"],
    ] {
        let ran = team.rollbook(&[&["runs"], args].concat());
        ran.assert_code(2);
        assert!(ran.stderr.contains("error"), "{args:?}: {}", ran.stderr);
    }
}
