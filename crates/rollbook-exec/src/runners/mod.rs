//! The runners that need nothing but the local machine: `shell`, `sleep` and `confirm`.

mod confirm;
mod shell;
mod sleep;

pub use confirm::{Answer, ConfirmRunner, Prompter, irreversible_question};
pub use shell::{GroupWatch, ShellRunner};
pub use sleep::SleepRunner;
