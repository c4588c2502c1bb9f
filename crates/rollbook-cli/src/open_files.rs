//! The open-files limit (`RLIMIT_NOFILE`) and what a run's fan-out needs of it.
//!
//! Every SSH connection is a file descriptor, and so is every step's log file and every pipe
//! of a local command. A default soft limit of 1024 is too low for a fan-out over a thousand
//! hosts, so rollbook raises its soft limit to the hard one at start (any process may), caps
//! its SSH connections below what is left after a reserve, and says so, with the numbers,
//! when even the hard limit is too low for the plan's fan-out.

use rollbook_plan::compile::CompiledPlan;

/// File descriptors kept for what is not a step: the journal, the display, the runtime, the
/// reaper, the HTTP and SQL runners' pools, the standard streams.
const BASE_RESERVE: u64 = 64;

/// Pipes of one local command (stdin, stdout, stderr).
const PIPES_PER_COMMAND: u64 = 3;

/// Idle SSH connections kept beside those in use: one per this many steps in flight. A host's
/// next step usually comes right after its last one, so a few idle connections are enough
/// (1,000 hosts at `--parallelism 256` open 1,000 connections, none twice); more would only
/// hold memory (a russh connection is about 100 KiB) for hosts whose steps are done.
const STEPS_PER_IDLE: usize = 8;

/// SSH connections that may always be open, whatever the parallelism.
const MIN_CONNECTIONS: usize = 64;

/// The process's open-files limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// What is enforced.
    pub soft: u64,
    /// How far the soft limit may be raised without privileges.
    pub hard: u64,
}

/// The soft limit rollbook started with, before `raise`: what local commands get back, since
/// some programs misbehave with descriptors past 1024 (`select`).
static STARTED_WITH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The soft limit this process started with, once `raise` has run.
pub fn started_with() -> Option<u64> {
    STARTED_WITH.get().copied()
}

/// Raises the soft limit to the hard one and answers the limits now in force; `None` when
/// they cannot be read.
pub fn raise() -> Option<OpenFiles> {
    let before = current()?;
    let _ = STARTED_WITH.set(before.soft);
    if before.soft < before.hard {
        let raised = libc::rlimit {
            rlim_cur: before.hard,
            rlim_max: before.hard,
        };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the
        // hard one needs no privilege. On failure the old limit stays.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(OpenFiles {
                soft: before.hard,
                hard: before.hard,
            });
        }
    }
    Some(before)
}

/// The limits in force, as `raise` left them.
pub fn current() -> Option<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(OpenFiles {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// What a plan's fan-out needs at once at a given parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    /// `--parallelism`: steps in flight at once, each with a log file.
    pub parallelism: usize,
    /// SSH steps that may be in flight at once (each on its own connection, at worst).
    pub ssh: usize,
    /// Local commands that may be in flight at once (three pipes each).
    pub local: usize,
}

impl FanOut {
    /// The fan-out of `plan` at `parallelism`.
    pub fn of(plan: &CompiledPlan, parallelism: usize) -> Self {
        let count = |kind: &str| {
            plan.phases
                .iter()
                .flat_map(|p| p.graph.node_weights())
                .filter(|n| n.step.action().kind() == kind)
                .count()
        };
        FanOut {
            parallelism,
            ssh: count("ssh").min(parallelism),
            local: count("shell").min(parallelism),
        }
    }

    /// Descriptors kept for everything but SSH connections.
    pub fn reserve(&self) -> u64 {
        BASE_RESERVE + self.parallelism as u64 + PIPES_PER_COMMAND * self.local as u64
    }

    /// Descriptors the fan-out needs, SSH connections included.
    pub fn needed(&self) -> u64 {
        self.reserve() + self.ssh as u64
    }

    /// SSH connections that may be open at once (idle ones included) under `limits`: the
    /// parallelism and an eighth more (at least 64), and what the limit leaves after the
    /// reserve.
    pub fn ssh_cap(&self, limits: Option<OpenFiles>) -> usize {
        let idle = self.parallelism.div_ceil(STEPS_PER_IDLE);
        let wanted = self.parallelism.saturating_add(idle).max(MIN_CONNECTIONS);
        let allowed = limits.map_or(wanted, |l| {
            usize::try_from(l.soft.saturating_sub(self.reserve())).unwrap_or(usize::MAX)
        });
        wanted.min(allowed).max(1)
    }

    /// What to tell the operator when the limit is too low for this fan-out.
    pub fn warning(&self, limits: Option<OpenFiles>) -> Option<String> {
        let l = limits?;
        if self.ssh == 0 || l.soft >= self.needed() {
            return None;
        }
        Some(format!(
            "the open-files limit is {} (hard limit {}), and this plan at --parallelism {} needs \
             about {}: {} for SSH connections, {} for logs, pipes and the journal. SSH \
             connections are capped at {} open at once: steps on other hosts wait for a free \
             one. Raise the hard limit (`ulimit -Hn {}` as root, `LimitNOFILE={}` in a systemd \
             unit, `nofile` in /etc/security/limits.conf) or lower --parallelism.",
            l.soft,
            l.hard,
            self.parallelism,
            self.needed(),
            self.ssh,
            self.reserve(),
            self.ssh_cap(limits),
            self.needed(),
            self.needed(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan_out(parallelism: usize, ssh: usize, local: usize) -> FanOut {
        FanOut {
            parallelism,
            ssh,
            local,
        }
    }

    const LOW: Option<OpenFiles> = Some(OpenFiles {
        soft: 1024,
        hard: 1024,
    });

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        let f = fan_out(512, 512, 0);
        assert_eq!(f.reserve(), 64 + 512);
        assert_eq!(f.ssh_cap(LOW), 1024 - 64 - 512);
        assert!(f.warning(LOW).is_some());
    }

    #[test]
    fn with_descriptors_to_spare_an_eighth_more_than_the_parallelism_is_kept_open() {
        let plenty = Some(OpenFiles {
            soft: 1 << 20,
            hard: 1 << 20,
        });
        let f = fan_out(256, 256, 0);
        assert_eq!(f.ssh_cap(plenty), 288);
        assert_eq!(f.warning(plenty), None);
        assert_eq!(fan_out(4, 4, 0).ssh_cap(plenty), 64);
        assert_eq!(f.ssh_cap(None), 288);
    }

    #[test]
    fn local_commands_count_their_pipes() {
        let f = fan_out(256, 256, 256);
        assert_eq!(f.reserve(), 64 + 256 + 3 * 256);
        assert_eq!(f.ssh_cap(LOW), 1);
        let warning = f.warning(LOW).expect("too low");
        assert!(warning.starts_with("the open-files limit is 1024 (hard limit 1024)"));
        assert!(warning.contains("needs about 1344"), "{warning}");
        assert!(warning.contains("capped at 1 open at once"), "{warning}");
        assert!(warning.contains("ulimit -Hn 1344"), "{warning}");
    }

    #[test]
    fn a_plan_without_ssh_steps_is_not_warned_about() {
        let f = fan_out(4096, 0, 0);
        assert_eq!(f.warning(LOW), None);
    }

    #[test]
    fn raising_ends_with_the_soft_limit_at_the_hard_one() {
        let limits = raise().expect("limits readable");
        assert_eq!(limits.soft, limits.hard);
        assert_eq!(current(), Some(limits));
    }
}
