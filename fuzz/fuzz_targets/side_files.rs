//! The readers of `--params-file` and `--inventory` on any text: nothing may panic, every
//! diagnostic must point inside the file, and so must every host name of an inventory that
//! reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rollbook_plan::{Diagnostic, SourceFile, load_inventory, load_params_file};

fn assert_inside(diagnostics: &[Diagnostic], text: &str) {
    for d in diagnostics {
        assert!(
            d.span.offset + d.span.len <= text.len(),
            "diagnostic `{}` points past the end of the file: {:?}",
            d.code,
            d.span
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = SourceFile::new("fuzz.yaml", text);
    if let Err(diagnostics) = load_params_file(&file) {
        assert_inside(&diagnostics, text);
    }
    match load_inventory(&file) {
        Ok(groups) => {
            for group in groups.values() {
                for child in group.children() {
                    assert!(child.span.offset + child.span.len <= text.len(), "{:?}", child.span);
                }
                for host in group.hosts() {
                    let span = host.name().span;
                    assert!(span.offset + span.len <= text.len(), "{span:?}");
                }
            }
        }
        Err(diagnostics) => assert_inside(&diagnostics, text),
    }
});
