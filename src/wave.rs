//! The wave scheduler of a release to several targets (`[[targets]]`, `deploy.waves`): after
//! each wave it decides whether the next wave starts, or the release stops and which targets
//! go back. Pure, table-tested like `gate`; `run::waves` does what it decides.

use crate::config::OnFailure;

/// How one target's run ended, as far as the scheduler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Rolled out and verified; `changed`: it runs the release now and did not before (a
    /// target that already ran it has nothing to undo).
    Passed { changed: bool },
    /// Failed: its own run rolled back what it changed, or says what needs a person.
    Failed,
    /// Refused before anything changed (a gate, a busy service, an unreachable account).
    Refused,
}

/// What happens after a wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start wave `n` (0 first).
    Wave(usize),
    /// Every wave passed: the release is out.
    Done,
    /// A target of the last wave did not pass: the release stops, and these targets, which
    /// passed and changed, go back to what they ran before (`(wave, index in wave)`).
    Stop { roll_back: Vec<(usize, usize)> },
}

/// Decides after the waves in `done` (the last one just ended) of `total`.
pub fn next(done: &[Vec<Ended>], total: usize, on_failure: OnFailure) -> Next {
    let Some(last) = done.last() else {
        return if total == 0 {
            Next::Done
        } else {
            Next::Wave(0)
        };
    };
    let failed = last.iter().any(|e| !matches!(e, Ended::Passed { .. }));
    if !failed {
        return if done.len() >= total {
            Next::Done
        } else {
            Next::Wave(done.len())
        };
    }
    let current = done.len() - 1;
    let roll_back = done
        .iter()
        .enumerate()
        .filter(|(w, _)| *w == current || on_failure == OnFailure::RollbackAll)
        .flat_map(|(w, wave)| {
            wave.iter()
                .enumerate()
                .filter(|(_, e)| **e == Ended::Passed { changed: true })
                .map(move |(i, _)| (w, i))
        })
        .collect();
    Next::Stop { roll_back }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ended::*;

    const NEW: Ended = Passed { changed: true };
    const SAME: Ended = Passed { changed: false };

    /// (name, waves so far, total waves, on_failure, expected)
    type Case = (&'static str, Vec<Vec<Ended>>, usize, OnFailure, Next);

    #[test]
    fn decisions() {
        let cases: Vec<Case> = vec![
            (
                "nothing yet",
                vec![],
                2,
                OnFailure::RollbackAll,
                Next::Wave(0),
            ),
            (
                "no waves at all",
                vec![],
                0,
                OnFailure::RollbackAll,
                Next::Done,
            ),
            (
                "wave 1 green",
                vec![vec![NEW]],
                2,
                OnFailure::RollbackAll,
                Next::Wave(1),
            ),
            (
                "the last wave green",
                vec![vec![NEW], vec![NEW, SAME]],
                2,
                OnFailure::RollbackAll,
                Next::Done,
            ),
            (
                "already everywhere: nothing to undo, nothing stops",
                vec![vec![SAME], vec![SAME]],
                2,
                OnFailure::RollbackAll,
                Next::Done,
            ),
            (
                "wave 2 fails, rollback-all: wave 1 and wave 2's passed target go back",
                vec![vec![NEW], vec![Failed, NEW]],
                3,
                OnFailure::RollbackAll,
                Next::Stop {
                    roll_back: vec![(0, 0), (1, 1)],
                },
            ),
            (
                "wave 2 fails, keep-earlier: only wave 2's passed target goes back",
                vec![vec![NEW], vec![NEW, Failed]],
                2,
                OnFailure::KeepEarlier,
                Next::Stop {
                    roll_back: vec![(1, 0)],
                },
            ),
            (
                "a target that already ran the release is never rolled back",
                vec![vec![SAME, NEW], vec![Failed]],
                2,
                OnFailure::RollbackAll,
                Next::Stop {
                    roll_back: vec![(0, 1)],
                },
            ),
            (
                "a refusal in wave 1 stops the release; its passed neighbour goes back",
                vec![vec![NEW, Refused]],
                2,
                OnFailure::KeepEarlier,
                Next::Stop {
                    roll_back: vec![(0, 0)],
                },
            ),
            (
                "wave 1 fails alone: nothing to undo, wave 2 never starts",
                vec![vec![Failed]],
                2,
                OnFailure::RollbackAll,
                Next::Stop { roll_back: vec![] },
            ),
        ];
        for (name, done, total, on_failure, want) in cases {
            assert_eq!(next(&done, total, on_failure), want, "{name}");
        }
    }
}
