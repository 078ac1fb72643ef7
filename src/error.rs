//! Typed failures that decide ferry's exit code.
//!
//! Everything else travels as `anyhow::Error`; a [`Failure`] anywhere in the cause chain tells
//! `main` which documented exit code to use and which fix hint to print.

use std::fmt;

/// The documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// 1: an operational error before anything was changed (AWS unreachable, access denied…).
    Error,
    /// 2: invalid input: tag, event, configuration or arguments.
    Invalid,
    /// 3: refused by a safety gate (tag conflict, deployment in flight…).
    Refused,
    /// 4: the deploy failed and the environment was rolled back to its previous release.
    RolledBack,
    /// 5: failed, and the environment is not known to be good: a person must look.
    NeedsAttention,
}

impl FailureKind {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Error => 1,
            FailureKind::Invalid => 2,
            FailureKind::Refused => 3,
            FailureKind::RolledBack => 4,
            FailureKind::NeedsAttention => 5,
        }
    }
}

/// An error the caller branches on. Put it at the root of an anyhow chain
/// (`Err(Failure::invalid(..))?`) and add context around it as usual.
#[derive(Debug)]
pub struct Failure {
    /// Which exit code.
    pub kind: FailureKind,
    /// What went wrong, naming the resource.
    pub message: String,
    /// How to fix it, when there is a way.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }
    /// Exit 2: invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Invalid, message)
    }
    /// Exit 3: refused by a safety gate.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Refused, message)
    }
    /// Exit 4: failed and rolled back.
    pub fn rolled_back(message: impl Into<String>) -> Self {
        Self::new(FailureKind::RolledBack, message)
    }
    /// Exit 5: failed, and a person must look.
    pub fn needs_attention(message: impl Into<String>) -> Self {
        Self::new(FailureKind::NeedsAttention, message)
    }
    /// Adds the fix hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The first [`Failure`] in an error's cause chain, if any.
pub fn classify(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

/// Exit code for an error: the classified kind, or 1 for an unclassified error.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    classify(err).map_or(1, |f| f.kind.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn classification_survives_context() {
        let err = Err::<(), _>(Failure::refused("tag moved").hint("pick a new tag"))
            .context("promoting app")
            .unwrap_err();
        assert_eq!(exit_code(&err), 3);
        assert_eq!(
            classify(&err).unwrap().hint.as_deref(),
            Some("pick a new tag")
        );
    }

    #[test]
    fn unclassified_is_one() {
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), 1);
    }
}
