//! A node's settings: its own, else its groups', else the plan's `defaults`.

use super::*;

/// A step's settings with the plan's `defaults` filled in.
///
/// `params` (the bound params) give the length of a duration written as `{{ params.NAME }}`.
pub(super) fn settings(
    d: &Defaults,
    step: &Step,
    groups: &[Arc<Step>],
    params: &Value,
) -> Settings {
    let len = |d: &Spanned<Duration>| d.value.resolve(params);
    // The step's own setting, else the innermost group's that has one, else the default.
    let inherited =
        |get: &dyn Fn(&Step) -> bool| groups.iter().rev().find(|g| get(g)).map(|g| g.as_ref());
    let retry = step
        .retry
        .as_ref()
        .or_else(|| inherited(&|g| g.retry.is_some()).and_then(|g| g.retry.as_ref()))
        .or(d.retry.as_ref());
    let group_timeout = inherited(&|g| g.timeout.is_some()).and_then(|g| g.timeout.as_ref());
    Settings {
        // A person answering a `confirm`, or a `sleep`, is not held to the default timeout.
        timeout: match step.action() {
            ActionRef::Sleep(_) | ActionRef::Confirm(_) => step.timeout.as_ref().or(group_timeout),
            _ => step
                .timeout
                .as_ref()
                .or(group_timeout)
                .or(d.timeout.as_ref()),
        }
        .map(len),
        retry: RetryPolicy {
            attempts: retry.map_or(1, |r| r.attempts.value.max(1)),
            delay: retry
                .and_then(|r| r.delay.as_ref())
                .map_or(DEFAULT_RETRY_DELAY, len),
            backoff: retry
                .and_then(|r| r.backoff.as_ref())
                .map_or(Backoff::Fixed, |b| b.value),
            max_delay: retry.and_then(|r| r.max_delay.as_ref()).map(len),
            jitter: retry
                .and_then(|r| r.jitter.as_ref())
                .is_some_and(|j| j.value),
        },
        gate: step.until.as_ref().map(|u| Gate {
            until: u.value.clone(),
            interval: step.interval.as_ref().map_or(DEFAULT_INTERVAL, len),
            deadline: step.deadline.as_ref().map_or(DEFAULT_DEADLINE, len),
        }),
        on_failure: step
            .on_failure
            .as_ref()
            .or_else(|| inherited(&|g| g.on_failure.is_some()).and_then(|g| g.on_failure.as_ref()))
            .map_or(OnFailure::Abort, |o| o.value),
        resume: step
            .resume
            .as_ref()
            .or_else(|| inherited(&|g| g.resume.is_some()).and_then(|g| g.resume.as_ref()))
            .map_or(ResumePolicy::Rerun, |r| r.value),
    }
}
