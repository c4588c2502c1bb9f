//! `rollbook schema`: the JSON Schema of plan files.

use crate::Failure;

pub fn run() -> Result<(), Failure> {
    crate::print(&rollbook_plan::schema::plan_schema_json());
    Ok(())
}

/// `rollbook man DIR`: a man page for rollbook and one for each command (`rollbook-run.1`),
/// from the same definitions as `--help`.
pub fn man(dir: &std::path::Path) -> Result<(), Failure> {
    let write = |name: &str, page: &clap::Command| -> Result<(), Failure> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page.clone())
            .render(&mut out)
            .map_err(|e| Failure::internal(format!("{}: {e}", path.display())))?;
        std::fs::write(&path, out)
            .map_err(|e| Failure::invalid(format!("cannot write {}: {e}", path.display())))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::invalid(format!("cannot create {}: {e}", dir.display())))?;
    let mut root = <crate::Cli as clap::CommandFactory>::command();
    root.build();
    write("rollbook", &root)?;
    let mut written = 1;
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write(&format!("rollbook-{}", sub.get_name()), sub)?;
        written += 1;
    }
    say!("{written} man pages in {}", dir.display());
    Ok(())
}
