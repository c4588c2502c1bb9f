//! The plan loader on any text: parse, decode, validate, and for a plan that checks, bind its
//! default params, compile it and preview every node (templates rendered as the dry run
//! does). Nothing may panic, and every diagnostic must point inside the file.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rollbook_plan::compile::{ParamInput, RunInfo, bind_params, compile};
use rollbook_plan::preview::preview;
use rollbook_plan::template::Renderer;
use rollbook_plan::{SourceFile, check};

/// Previewing renders every node's templates: enough of them to reach every kind of action.
const MAX_PREVIEWED: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = check(SourceFile::new("fuzz.yaml", text), Some("fuzz"));
    for d in &checked.diagnostics {
        assert!(
            d.span.offset + d.span.len <= text.len(),
            "diagnostic `{}` points past the end of the file: {:?}",
            d.code,
            d.span
        );
        let _ = checked.file.line_col(d.span.offset);
    }
    if !checked.is_ok() {
        return;
    }
    let plan = checked.plan.as_ref().expect("a checked plan");
    let Ok(params) = bind_params(plan, &ParamInput::default()) else {
        return;
    };
    let run = RunInfo {
        id: "20261205-000000-f022".into(),
        reason: "fuzz".into(),
        user: "fuzz".into(),
        started_at: "2026-12-05T00:00:00.000Z".into(),
    };
    let Ok(compiled) = compile(plan, params, &BTreeMap::new(), &run) else {
        return;
    };
    let renderer = Renderer::new();
    for phase in &compiled.phases {
        for node in phase.graph.node_weights().take(MAX_PREVIEWED) {
            let _ = preview(&compiled, phase, node, &renderer);
        }
    }
});
