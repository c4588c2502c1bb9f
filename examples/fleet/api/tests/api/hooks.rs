//! The Slack and Statuspage stand-ins.

use serde_json::{Value, json};

use crate::{KEY, answer, start};

#[tokio::test]
async fn slack_records_a_json_body_and_answers_ok() {
    let f = start().await;
    let body = json!({ "text": "Operator rollback succeeded", "blocks": [] });
    let a = answer(
        f.client
            .post(f.api("/hooks/slack/T000/B000/XXXX"))
            .json(&body),
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok"));

    let slack = f.get_api("/_fleet/state").await.json()["slack"].clone();
    assert_eq!(slack.as_array().unwrap().len(), 1, "{slack}");
    assert_eq!(slack[0]["path"], "/hooks/slack/T000/B000/XXXX");
    assert_eq!(slack[0]["body"], body);
    assert!(slack[0]["at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn slack_refuses_a_body_that_is_not_json_as_slack_does() {
    let f = start().await;
    for body in ["text=hello", "", "{\"text\": "] {
        let a = answer(
            f.client
                .post(f.api("/hooks/slack/T000/B000/XXXX"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (400, "invalid_payload"),
            "{body:?}"
        );
    }
    let state = f.get_api("/_fleet/state").await.json();
    assert_eq!(state["slack"], json!([]), "refused calls are not recorded");
}

fn incident(status: &str) -> Value {
    json!({ "incident": { "name": "Platform upgrade rollback", "status": status,
                          "impact": "minor", "body": "We are rolling back." } })
}

#[tokio::test]
async fn statuspage_refuses_a_call_without_the_oauth_key() {
    let f = start().await;
    let url = f.api("/statuspage/v1/pages/abc123/incidents");
    let cases = [
        None,
        Some("OAuth wrong-key".to_string()),
        Some(format!("Bearer {KEY}")),
        Some(KEY.to_string()),
    ];
    for auth in cases {
        let mut req = f.client.post(&url).json(&incident("investigating"));
        if let Some(auth) = &auth {
            req = req.header("authorization", auth);
        }
        let a = answer(req).await;
        assert_eq!(a.status, 401, "{auth:?}: {a:?}");
        assert!(a.json()["error"].is_string(), "{a:?}");
        assert!(
            !a.body.contains(KEY),
            "the key is not given away: {}",
            a.body
        );
    }
    let state = f.get_api("/_fleet/state").await.json();
    assert_eq!(state["statuspage"], json!([]));
}

#[tokio::test]
async fn statuspage_opens_numbered_incidents_with_the_key() {
    let f = start().await;
    let post = |page: &str, body: Value| {
        f.client
            .post(f.api(&format!("/statuspage/v1/pages/{page}/incidents")))
            .header("authorization", format!("OAuth {KEY}"))
            .json(&body)
    };
    let a = answer(post("abc123", incident("investigating"))).await;
    assert_eq!(a.status, 201);
    assert_eq!(
        a.json(),
        json!({ "id": "inc-1", "status": "investigating", "name": "Platform upgrade rollback" })
    );
    let a = answer(post("page-2", incident("resolved"))).await;
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["id"], "inc-2");
    assert_eq!(a.json()["status"], "resolved");

    let recorded = f.get_api("/_fleet/state").await.json()["statuspage"].clone();
    assert_eq!(recorded[0]["page_id"], "abc123");
    assert_eq!(recorded[0]["body"], incident("investigating"));
    assert_eq!(recorded[1]["page_id"], "page-2");
    assert_eq!(recorded.as_array().unwrap().len(), 2);

    let bad = answer(
        f.client
            .post(f.api("/statuspage/v1/pages/abc123/incidents"))
            .header("authorization", format!("OAuth {KEY}"))
            .body("not json"),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}
