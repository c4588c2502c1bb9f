//! A template value reaches the local shell as data, in every position a plan can put it:
//! for arbitrary text, the command receives exactly the value and runs nothing else.

use std::sync::Arc;

use proptest::prelude::*;
use rollbook_exec::runner::{Attempt, Outcome, OutputSink, Runner};
use rollbook_exec::runners::ShellRunner;
use rollbook_plan::action::{Action, ShellCommand};
use tokio_util::sync::CancellationToken;

#[path = "../../../rollbook-plan/tests/support/shell_positions.rs"]
mod shell_positions;
use shell_positions::{ShellPosition, check_every_position, render, value};

/// Runs `position` with `value` through the shell runner; what it wrote to `$OUT`.
fn received(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    p: &ShellPosition,
    value: &str,
) -> Vec<u8> {
    let out = dir.join("out");
    let _ = std::fs::remove_file(&out);
    let text = render(p.template, value);
    let cmd = ShellCommand {
        command: (!p.script).then(|| text.clone()),
        script: p.script.then_some(text),
        env: vec![
            ("OUT".into(), out.display().to_string()),
            ("CANARY".into(), dir.join("canary").display().to_string()),
        ],
        cwd: Some(dir.display().to_string()),
    };
    let outcome = rt.block_on(ShellRunner::default().run(
        &Action::Shell(cmd),
        Attempt::new(
            Arc::from("values"),
            1,
            CancellationToken::new(),
            OutputSink::discard(),
        ),
    ));
    assert!(
        matches!(outcome, Outcome::Succeeded { .. }),
        "{}: {value:?} failed: {outcome:?}",
        p.name
    );
    std::fs::read(&out).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_position_receives_exactly_the_value_and_runs_nothing_else(value in value()) {
        check(&value)?;
    }
}

fn check(value: &str) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    check_every_position(value, &dir.path().join("canary"), |p, v| {
        received(&rt, dir.path(), p, v)
    })
}

#[test]
fn the_hostile_pieces_each_arrive_alone_and_together() {
    let all = shell_positions::HOSTILE.concat();
    for value in shell_positions::HOSTILE
        .iter()
        .copied()
        .chain([all.as_str(), ""])
    {
        check(value).unwrap();
    }
}
