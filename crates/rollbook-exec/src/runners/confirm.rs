use std::sync::Arc;

use crate::result::ConfirmResult;
use crate::runner::{Attempt, BoxFuture, Outcome, Runner};
use rollbook_plan::action::Action;

/// A person's answer to a `confirm` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// They said yes.
    pub yes: bool,
    /// Who answered (the user at the terminal, or `--yes` given by whom).
    pub by: String,
}

/// Asks a person. The CLI implements it on the terminal; with `--yes` it answers itself.
pub trait Prompter: Send + Sync + 'static {
    /// `Err` when nobody can be asked (no terminal and no `--yes`).
    fn ask<'a>(&'a self, node: &'a str, prompt: &'a str) -> BoxFuture<'a, Result<Answer, String>>;

    /// The plan's confirmation, asked again right before the first `irreversible: true` step
    /// starts: `phrase` typed exactly, or `yes` when the plan has none. `Err` when nobody can
    /// be asked. By default, asked as a `confirm` question.
    fn confirm_irreversible<'a>(
        &'a self,
        node: &'a str,
        phrase: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Answer, String>> {
        Box::pin(async move {
            let prompt = irreversible_question(node, phrase);
            self.ask(node, &prompt).await
        })
    }
}

/// The question before an irreversible step: `step drop-column is irreversible: type
/// PHRASE to go on` (`type yes` when the plan has no phrase).
pub fn irreversible_question(node: &str, phrase: Option<&str>) -> String {
    format!(
        "step {node} is irreversible: type {} to go on",
        phrase.unwrap_or("yes")
    )
}

/// `confirm: "Drop the new columns?"`: the run waits for a person.
pub struct ConfirmRunner {
    prompter: Arc<dyn Prompter>,
}

impl ConfirmRunner {
    /// A runner that asks through `prompter`.
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
                Ok(Answer { yes, by }) => {
                    let result = ConfirmResult {
                        yes,
                        answered_by: by,
                    };
                    if yes {
                        Outcome::Succeeded {
                            result: result.to_value(),
                        }
                    } else {
                        Outcome::Failed {
                            message: format!("{} answered no", result.answered_by),
                            result: Some(result.to_value()),
                        }
                    }
                }
                Err(why) => Outcome::failed(why),
            }
        })
    }
}
