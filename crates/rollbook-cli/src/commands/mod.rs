pub mod report;
pub mod runs;
pub mod show;
