//! `expect.jq` of HTTP steps is checked by the executor, with the run context.

use rollbook_exec::runner::{Attempt, BoxFuture, Outcome, Runner};
use rollbook_exec::{NodeStatus, RunStatus, Runners};
use rollbook_plan::action::Action;
use serde_json::json;

use crate::{MemJournal, Setup, compile_with, execute, finish_of};

/// Answers every request with a fixed response, like a server that says `{"ready": <ready>}`.
struct FixedHttp {
    ready: bool,
}

impl Runner for FixedHttp {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn run<'a>(&'a self, _: &'a Action, _: Attempt) -> BoxFuture<'a, Outcome> {
        let ready = self.ready;
        Box::pin(async move {
            Outcome::Succeeded {
                result: json!({ "status": 200, "body": format!("{{\"ready\":{ready}}}"), "json": { "ready": ready, "region": "eu" } }),
            }
        })
    }
}

const PLAN: &str = r#"
version: 1
name: expect
params:
  region: { default: eu }
steps:
  - id: check
    http:
      url: http://127.0.0.1:1/health
      expect: { jq: '.json.ready and .json.region == $params.region' }
"#;

#[tokio::test(start_paused = true)]
async fn expect_jq_that_holds_passes_and_one_that_does_not_fails_the_attempt() {
    for (ready, status) in [(true, RunStatus::Succeeded), (false, RunStatus::Failed)] {
        let plan = compile_with(PLAN, &[]);
        let runners = Runners::new().with(FixedHttp { ready });
        let mut journal = MemJournal::default();
        let got = execute(&plan, &runners, Setup::default(), &mut journal).await;
        assert_eq!(got, status);
        let (node_status, message, _) = finish_of(&journal.events, "steps", "check");
        if ready {
            assert_eq!(node_status, NodeStatus::Succeeded);
        } else {
            assert_eq!(node_status, NodeStatus::Failed);
            let message = message.unwrap();
            assert!(
                message.starts_with(
                    "expected `.json.ready and .json.region == $params.region` to hold"
                ),
                "{message}"
            );
            assert!(message.contains(r#"{"ready":false}"#), "{message}");
        }
    }
}
