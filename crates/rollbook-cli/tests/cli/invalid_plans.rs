//! Every file in `tests/fixtures/invalid/` is a plan with something wrong in it; its rendered
//! diagnostics are snapshots. Adding a case is adding a file (and reviewing its snapshot).

use rollbook_cli::diagnostics::{self, Format, Style};
use rollbook_plan::SourceFile;

#[test]
fn every_invalid_fixture_is_refused_with_a_located_diagnostic() {
    let dir = crate::crate_dir().join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "only {} invalid fixtures", files.len());
    for path in files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = format!("fixtures/invalid/{stem}.yaml");
        let checked = rollbook_plan::check(SourceFile::new(name, text), Some(&stem));
        assert!(
            !checked.is_ok(),
            "{stem}.yaml should be invalid but validated"
        );
        let rendered =
            diagnostics::render_all(std::slice::from_ref(&checked), Format::Text, Style::PLAIN);
        // Every diagnostic names a line of the file (miette prints `[file:line:col]`).
        assert!(
            rendered.contains(&format!("[fixtures/invalid/{stem}.yaml:")),
            "{stem}: no location in\n{rendered}"
        );
        insta::assert_snapshot!(format!("invalid__{stem}"), rendered);
    }
}

#[test]
fn json_and_github_formats_carry_line_and_column() {
    let text = "version: 1\nname: x\nsteps:\n  - id: a\n    slep: 1s\n";
    let checked = rollbook_plan::check(SourceFile::new("plans/x.yaml", text), Some("x"));
    let json = diagnostics::render_all(std::slice::from_ref(&checked), Format::Json, Style::PLAIN);
    insta::assert_snapshot!(json);
    let github =
        diagnostics::render_all(std::slice::from_ref(&checked), Format::Github, Style::PLAIN);
    insta::assert_snapshot!(github);
}

/// Plans that run but hold what `validate` warns about (`tests/fixtures/warnings/`): their
/// warnings, as people and as CI annotations see them.
#[test]
fn warning_fixtures_validate_with_located_warnings() {
    let dir = crate::crate_dir().join("tests/fixtures/warnings");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = format!("fixtures/warnings/{stem}.yaml");
        let checked = rollbook_plan::check(SourceFile::new(name, text), Some(&stem));
        assert!(checked.is_ok(), "{stem}.yaml should validate");
        assert!(
            !checked.diagnostics.is_empty(),
            "{stem}.yaml has no warning"
        );
        let checked = std::slice::from_ref(&checked);
        let human = diagnostics::render_all(checked, Format::Text, Style::PLAIN);
        insta::assert_snapshot!(format!("warnings__{stem}"), human);
        let github = diagnostics::render_all(checked, Format::Github, Style::PLAIN);
        insta::assert_snapshot!(format!("warnings__{stem}__github"), github);
    }
}

/// `tests/fixtures/invalid/calls/` is a small plans directory: the `ok-*` plans are valid and
/// called by the others, each of which calls wrongly (an unknown plan, secrets and params not
/// as declared, a cycle, a plan calling itself, a called plan with its own `confirm` and
/// `finally`, a call inside a group). Checked as `validate` checks them, with the calls found
/// by name in that directory.
#[test]
fn every_wrong_call_is_refused_with_a_located_diagnostic() {
    let dir = std::path::Path::new("tests/fixtures/invalid/calls");
    let files = rollbook_cli::locate::plan_files(&[dir.to_path_buf()]).unwrap();
    assert!(files.len() >= 10, "{files:?}");
    for path in &files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let checked = rollbook_cli::commands::validate::check_file(dir, path, &files).unwrap();
        if stem.starts_with("ok-") {
            assert!(checked.is_ok(), "{stem}: {:#?}", checked.diagnostics);
            continue;
        }
        assert!(
            !checked.is_ok(),
            "{stem}.yaml should be invalid but validated"
        );
        let rendered =
            diagnostics::render_all(std::slice::from_ref(&checked), Format::Text, Style::PLAIN);
        assert!(
            rendered.contains(&format!("[tests/fixtures/invalid/calls/{stem}.yaml:")),
            "{stem}: no location in\n{rendered}"
        );
        insta::assert_snapshot!(format!("invalid_calls__{stem}"), rendered);
    }
}
