use rollbook_plan::action::Action;
use serde_json::json;

use crate::runner::{Attempt, BoxFuture, Outcome, Runner};

/// `sleep: 30s`: waits, and stops waiting when cancelled.
pub struct SleepRunner;

impl Runner for SleepRunner {
    fn kind(&self) -> &'static str {
        "sleep"
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Action::Sleep { duration } = action else {
                return Outcome::failed("the sleep runner got another kind of step");
            };
            tokio::select! {
                _ = tokio::time::sleep(*duration) => Outcome::Succeeded {
                    result: json!({ "slept_secs": duration.as_secs_f64() }),
                },
                _ = attempt.cancel.cancelled() => Outcome::failed("cancelled while sleeping"),
            }
        })
    }
}
