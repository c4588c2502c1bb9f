use std::sync::Arc;

use rollbook_plan::action::Action;
use serde_json::json;

use crate::runner::{Attempt, BoxFuture, Outcome, Runner};

/// A person's answer to a `confirm` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub yes: bool,
    /// Who answered (the user at the terminal, or `--yes` given by whom).
    pub by: String,
}

/// Asks a person. The CLI implements it on the terminal; with `--yes` it answers itself.
pub trait Prompter: Send + Sync + 'static {
    /// `Err` when nobody can be asked (no terminal and no `--yes`).
    fn ask<'a>(&'a self, node: &'a str, prompt: &'a str) -> BoxFuture<'a, Result<Answer, String>>;
}

/// `confirm: "Drop the new columns?"`: the run waits for a person.
pub struct ConfirmRunner {
    prompter: Arc<dyn Prompter>,
}

impl ConfirmRunner {
    pub fn new(prompter: Arc<dyn Prompter>) -> Self {
        ConfirmRunner { prompter }
    }
}

impl Runner for ConfirmRunner {
    fn kind(&self) -> &'static str {
        "confirm"
    }

    fn run<'a>(&'a self, action: &'a Action, attempt: Attempt) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Action::Confirm { prompt } = action else {
                return Outcome::failed("the confirm runner got another kind of step");
            };
            let answer = tokio::select! {
                a = self.prompter.ask(&attempt.node, prompt) => a,
                _ = attempt.cancel.cancelled() => return Outcome::failed("cancelled while waiting for an answer"),
            };
            match answer {
                Ok(Answer { yes: true, by }) => Outcome::Succeeded {
                    result: json!({ "answer": "yes", "answered_by": by }),
                },
                Ok(Answer { yes: false, by }) => Outcome::Failed {
                    message: format!("{by} answered no"),
                    result: Some(json!({ "answer": "no", "answered_by": by })),
                },
                Err(why) => Outcome::failed(why),
            }
        })
    }
}
