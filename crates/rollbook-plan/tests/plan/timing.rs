//! The worst case of a plan (`rollbook_plan::timing`): what a `budget` is checked against.

use std::time::Duration;

use rollbook_plan::timing;

use crate::compile::compile_with;

fn worst(text: &str) -> Option<Duration> {
    timing::bound(&compile_with(text, &[]), 64).worst()
}

#[test]
fn retries_wait_between_attempts_and_backoff_doubles_the_wait_up_to_its_cap() {
    let fixed = "version: 1\nname: t\nsteps:\n  - id: a\n    shell: { run: 'true' }\n    timeout: 10s\n    retry: { attempts: 3, delay: 2s }\n";
    assert_eq!(worst(fixed), Some(Duration::from_secs(3 * 10 + 2 + 2)));
    let exponential = "version: 1\nname: t\nsteps:\n  - id: a\n    shell: { run: 'true' }\n    timeout: 10s\n    retry: { attempts: 4, delay: 1s, backoff: exponential, max_delay: 3s }\n";
    // Waits 1s, 2s, then 4s capped at 3s.
    assert_eq!(
        worst(exponential),
        Some(Duration::from_secs(4 * 10 + 1 + 2 + 3))
    );
}

#[test]
fn a_gate_is_its_deadline_and_one_more_attempt_and_a_sleep_its_length() {
    let text = "version: 1\nname: t\nsteps:\n  - id: wait\n    shell: { run: 'true' }\n    timeout: 5s\n    until: 'true'\n    deadline: 2m\n  - id: pause\n    sleep: 30s\n";
    assert_eq!(worst(text), Some(Duration::from_secs(120 + 5 + 30)));
}

#[test]
fn steps_side_by_side_count_once_and_a_rollout_counts_its_waves() {
    let parallel = "version: 1\nname: t\nsteps:\n  - id: a\n    shell: { run: 'true' }\n    timeout: 10s\n    needs: []\n  - id: b\n    shell: { run: 'true' }\n    timeout: 20s\n    needs: []\n";
    assert_eq!(worst(parallel), Some(Duration::from_secs(20)));
    let rollout = |concurrency: u32| {
        format!(
            "version: 1\nname: t\ninventory:\n  web: [w1, w2, w3, w4, w5]\nsteps:\n  - id: roll\n    for_each: \"{{{{ inventory.web }}}}\"\n    concurrency: {concurrency}\n    steps:\n      - id: a\n        shell: {{ run: 'true' }}\n        timeout: 10s\n      - id: b\n        shell: {{ run: 'true' }}\n        timeout: 5s\n"
        )
    };
    // Five hosts: one at a time is five waves of 15s; two at a time three waves.
    assert_eq!(worst(&rollout(1)), Some(Duration::from_secs(75)));
    assert_eq!(worst(&rollout(2)), Some(Duration::from_secs(45)));
    assert_eq!(worst(&rollout(5)), Some(Duration::from_secs(15)));
}

#[test]
fn a_step_without_a_timeout_leaves_the_plan_unbounded_and_is_named() {
    let text = "version: 1\nname: t\nsteps:\n  - id: a\n    shell: { run: 'true' }\n  - id: b\n    sleep: 1s\nfinally:\n  - id: c\n    shell: { run: 'true' }\n    timeout: 1s\n";
    let bound = timing::bound(&compile_with(text, &[]), 64);
    assert_eq!(bound.worst(), None);
    assert_eq!(bound.phases[0].unbounded, ["a"]);
}
