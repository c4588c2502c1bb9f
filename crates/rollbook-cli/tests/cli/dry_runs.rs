//! Every plan in `plans/` and `examples/` validates, compiles and has a dry-run snapshot, so a
//! plan that rots fails CI and a change to what a plan would do shows up in review.

use std::path::Path;

use rollbook_cli::dry_run;
use rollbook_plan::SourceFile;
use rollbook_plan::calls::Library;
use rollbook_plan::compile::{self, ParamInput, RunInfo};

/// Params for plans that require some, as an operator would give them.
pub fn params_for(name: &str) -> Vec<String> {
    let p: &[&str] = match name {
        "config-recovery" => &["recovery_date=2026-11-20"],
        "database-pitr" => &["recovery_time=2026-11-25 03:00:00"],
        "notify-rollback" => &[
            "status=in-progress",
            "reason=operator 2.4 crash-loops",
            "page_id=pg123",
        ],
        "slack-notice" => &["what=Operator rollback", "about=region: us-east, by alice"],
        "service-isolation-rollback" => &[
            "service=node-agent",
            "nodes=us-east-worker-1,us-east-worker-2",
        ],
        _ => &[],
    };
    p.iter().map(|s| s.to_string()).collect()
}

pub fn run_info() -> RunInfo {
    RunInfo {
        id: "dry-run".into(),
        reason: "operator 2.4 crash-loops".into(),
        user: "alice".into(),
        started_at: "2026-11-25T03:00:00Z".into(),
    }
}

/// The `*.yaml` files of `dir`, sorted.
pub fn plan_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The plans of `dir` by name, as the CLI hands them to plans that call them.
pub fn library(dir: &Path) -> Library {
    let mut library = Library::new();
    for path in plan_files(dir) {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        library.insert(
            stem.clone(),
            SourceFile::new(format!("{}", path.display()), text),
        );
    }
    library
}

/// A plan file of `plans/` or `examples/` compiled as the dry run compiles it.
pub fn compile_file(path: &Path) -> compile::CompiledPlan {
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let library = library(path.parent().unwrap());
    let plan = rollbook_plan::check_with(
        SourceFile::new(path.display().to_string(), text),
        Some(stem),
        &library,
    )
    .plan
    .unwrap();
    let input = ParamInput::from_args(&params_for(stem)).unwrap();
    let params = compile::bind_params(&plan, &input).unwrap();
    compile::compile_with(
        &plan,
        params,
        &Default::default(),
        &run_info(),
        &[],
        &library,
    )
    .unwrap()
}

fn dry_run_dir(dir: &Path, prefix: &str) -> usize {
    let files = plan_files(dir);
    let library = library(dir);
    for path in &files {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let checked = rollbook_plan::check_with(
            SourceFile::new(format!("{prefix}/{stem}.yaml"), text),
            Some(stem),
            &library,
        );
        assert!(
            checked.diagnostics.is_empty(),
            "{stem}: {:#?}",
            checked.diagnostics
        );
        let plan = checked.plan.unwrap();
        let input = ParamInput::from_args(&params_for(stem)).unwrap();
        let params = compile::bind_params(&plan, &input).unwrap();
        let compiled = compile::compile_with(
            &plan,
            params,
            &Default::default(),
            &run_info(),
            &[],
            &library,
        )
        .unwrap();
        assert!(
            compiled.phases[0].graph.node_count() > 0,
            "{stem}: no nodes"
        );
        insta::assert_snapshot!(format!("dry_run__{stem}"), dry_run::text(&compiled, 64));
    }
    files.len()
}

#[test]
fn every_plan_in_plans_validates_and_dry_runs() {
    let n = dry_run_dir(&crate::workspace().join("plans"), "plans");
    assert!(n >= 9, "only {n} plans");
}

#[test]
fn every_example_validates_and_dry_runs() {
    let n = dry_run_dir(&crate::workspace().join("examples"), "examples");
    assert!(n >= 1);
}

#[test]
fn json_dry_run_lists_every_node_once() {
    let ws = crate::workspace();
    let compiled = compile_file(&ws.join("plans/operator-rollback.yaml"));
    let json: serde_json::Value = serde_json::from_str(&dry_run::json(&compiled, 8)).unwrap();
    let names: Vec<&str> = json["phases"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l.as_array().unwrap())
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), compiled.phases[0].graph.node_count());
    assert_eq!(names[0], "roll[us-east-op-1].stop");
    assert!(names.contains(&"roll[ap-south-op-3].healthy"));
    assert_eq!(json["parallelism"], 8);
    // Secrets never leave as values.
    assert_eq!(json["phases"][2]["layers"][0][0]["target"], "POST ***");
}
