//! Nodes: the list the plans search for their hostname, lookups, drains and enables.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::start;

fn node(id: &str, hostname: &str, region: &str, status: &str, instances: u64) -> Value {
    json!({ "id": id, "hostname": hostname, "region": region, "status": status,
            "active_instances": instances })
}

#[tokio::test]
async fn the_node_list_has_every_worker_with_a_node_id() {
    let f = start().await;
    let a = f.get_api("/api/v1/nodes").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        json!([
            node("node-101", "us-east-worker-1", "us-east", "active", 3),
            node("node-102", "us-east-worker-2", "us-east", "active", 2),
            node("node-201", "eu-west-worker-1", "eu-west", "active", 1),
        ]),
        "ap-south-worker-6 has no node id, operators are no nodes"
    );
}

#[tokio::test]
async fn a_node_is_found_by_id_and_an_unknown_id_is_a_json_404() {
    let f = start().await;
    let a = f.get_api("/api/v1/nodes/node-201").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        node("node-201", "eu-west-worker-1", "eu-west", "active", 1)
    );

    for path in [
        "/api/v1/nodes/node-999",
        "/api/v1/nodes/node-999/drain",
        "/api/v1/nodes/node-999/enable",
    ] {
        let a = if path.ends_with("999") {
            f.get_api(path).await
        } else {
            f.post_api(path).await
        };
        assert_eq!(a.status, 404, "{path}: {a:?}");
        assert_eq!(a.json()["error"], "no node with id node-999", "{path}");
    }
    let state = f.get_api("/_fleet/state").await.json();
    assert_eq!(
        state["node_history"],
        json!([]),
        "failed calls are not recorded"
    );
}

#[tokio::test]
async fn a_drain_takes_one_instance_per_step_until_the_node_is_drained() {
    let f = start().await; // drain_step_ms: 100
    let before = Instant::now();
    let a = f.post_api("/api/v1/nodes/node-101/drain").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        node("node-101", "us-east-worker-1", "us-east", "draining", 3),
        "the drain's answer is the node as it starts draining"
    );

    let seen = f
        .poll_node("node-101", Duration::from_secs(20), |n| {
            n["active_instances"] == 0
        })
        .await;
    let elapsed = before.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "3 instances at one per 100 ms cannot be gone after {elapsed:?}: {seen:?}"
    );
    let counts: Vec<u64> = seen
        .iter()
        .map(|n| n["active_instances"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    for n in &seen {
        let expected = if n["active_instances"] == 0 {
            "drained"
        } else {
            "draining"
        };
        assert_eq!(n["status"], expected, "{n}");
    }

    // The list agrees, and the other nodes did not move.
    let list = f.get_api("/api/v1/nodes").await.json();
    assert_eq!(
        list[0],
        node("node-101", "us-east-worker-1", "us-east", "drained", 0)
    );
    assert_eq!(list[1]["status"], "active");
    assert_eq!(list[1]["active_instances"], 2);
}

#[tokio::test]
async fn a_stuck_node_keeps_its_instances_until_released() {
    let f = start().await;
    let a = f.post_api("/_fleet/stuck/us-east-worker-1").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({ "stuck": ["us-east-worker-1"] }));

    f.post_api("/api/v1/nodes/node-101/drain").await;
    f.post_api("/api/v1/nodes/node-102/drain").await;
    // The free node drains to the end (only the stuck host is held) while the stuck one, asked
    // first, has not lost an instance.
    f.poll_node("node-102", Duration::from_secs(20), |n| {
        n["status"] == "drained"
    })
    .await;
    let stuck = f.get_api("/api/v1/nodes/node-101").await.json();
    assert_eq!(
        stuck,
        node("node-101", "us-east-worker-1", "us-east", "draining", 3)
    );

    let released = Instant::now();
    let a = answer_delete(&f, "/_fleet/stuck/us-east-worker-1").await;
    assert_eq!(a, json!({ "stuck": [] }));
    f.poll_node("node-101", Duration::from_secs(20), |n| {
        n["status"] == "drained"
    })
    .await;
    assert!(
        released.elapsed() >= Duration::from_millis(300),
        "the drain starts counting when released, not when it was asked"
    );

    let unknown = f.post_api("/_fleet/stuck/no-such-host").await;
    assert_eq!(unknown.status, 404);
}

async fn answer_delete(f: &crate::TestFleet, path: &str) -> Value {
    let a = crate::answer(f.client.delete(f.api(path))).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.json()
}

#[tokio::test]
async fn enable_makes_a_node_active_where_its_drain_left_it() {
    let f = start().await;
    f.post_api("/api/v1/nodes/node-102/drain").await;
    f.poll_node("node-102", Duration::from_secs(20), |n| {
        n["active_instances"].as_u64().unwrap() < 2
    })
    .await;
    let a = f.post_api("/api/v1/nodes/node-102/enable").await;
    assert_eq!(a.status, 200);
    let enabled = a.json();
    assert_eq!(enabled["status"], "active");
    let left = enabled["active_instances"].as_u64().unwrap();
    assert!(left < 2, "{enabled}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = f.get_api("/api/v1/nodes/node-102").await.json();
    assert_eq!(later, enabled, "an active node loses no more instances");

    // Enabling a node that was never drained is fine too.
    let a = f.post_api("/api/v1/nodes/node-201/enable").await;
    assert_eq!(
        a.json(),
        node("node-201", "eu-west-worker-1", "eu-west", "active", 1)
    );
}

#[tokio::test]
async fn drains_and_enables_are_recorded_in_order_with_a_utc_time() {
    let f = start().await;
    let before = OffsetDateTime::now_utc();
    f.post_api("/api/v1/nodes/node-101/drain").await;
    f.post_api("/api/v1/nodes/node-101/enable").await;
    f.post_api("/api/v1/nodes/node-201/drain").await;
    let after = OffsetDateTime::now_utc();
    let history = f.get_api("/_fleet/state").await.json()["node_history"].clone();
    let calls: Vec<(Value, Value, Value)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["id"].clone(), h["hostname"].clone(), h["action"].clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (json!("node-101"), json!("us-east-worker-1"), json!("drain")),
            (
                json!("node-101"),
                json!("us-east-worker-1"),
                json!("enable")
            ),
            (json!("node-201"), json!("eu-west-worker-1"), json!("drain")),
        ]
    );
    for h in history.as_array().unwrap() {
        assert_utc_time_between(h["at"].as_str().unwrap(), before, after);
    }
}

/// `at` is an RFC 3339 time in UTC (`Z`), to the millisecond at most, between `before` and
/// `after`. RFC 3339 drops a fraction's trailing zeros (`12:00:20.99Z`, `12:00:20Z`), so
/// the text's length says nothing: the time is parsed.
fn assert_utc_time_between(at: &str, before: OffsetDateTime, after: OffsetDateTime) {
    let parsed = OffsetDateTime::parse(at, &Rfc3339).unwrap_or_else(|e| panic!("{at}: {e}"));
    assert!(at.ends_with('Z'), "not written in UTC: {at}");
    assert_eq!(parsed.nanosecond() % 1_000_000, 0, "finer than a ms: {at}");
    // The recorded time is cut to the millisecond: it may be up to 1 ms before `before`.
    let earliest = before - time::Duration::milliseconds(1);
    assert!(
        earliest <= parsed && parsed <= after,
        "{at} is not between {before} and {after}"
    );
}

#[test]
fn a_utc_time_is_parsed_whatever_its_fraction_looks_like() {
    let day = |s: &str| OffsetDateTime::parse(s, &Rfc3339).unwrap();
    let (before, after) = (day("2024-05-01T12:00:20Z"), day("2024-05-01T12:00:21Z"));
    for at in [
        "2024-05-01T12:00:20.123Z",
        "2024-05-01T12:00:20.99Z",
        "2024-05-01T12:00:20.5Z",
        "2024-05-01T12:00:20Z",
    ] {
        assert_utc_time_between(at, before, after);
    }
    for wrong in [
        "2024-05-01T14:00:20.123+02:00",
        "2024-05-01T12:00:22.123Z",
        "2024-05-01T12:00:20.1234Z",
    ] {
        let failed = std::panic::catch_unwind(|| assert_utc_time_between(wrong, before, after));
        assert!(failed.is_err(), "{wrong} was accepted");
    }
}
