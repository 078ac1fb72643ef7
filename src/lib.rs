//! ferry: turns a GitHub release into a safe deploy on AWS ECS.
//!
//! The flow of one run: [`trigger`] (what started it) → [`tag`] (which environment) →
//! [`config`] (that environment's file) → [`aws::sts`] (its role) → [`plan`] (everything that
//! will happen, computed first) → promote / deploy / smoke → [`report`].

pub mod aws;
pub mod config;
pub mod deploy;
pub mod error;
pub mod logging;
pub mod panic;
pub mod plan;
pub mod promote;
pub mod redact;
pub mod registry;
pub mod report;
pub mod retry;
pub mod secret;
pub mod smoke;
pub mod status;
pub mod tag;
pub mod trigger;
pub mod validate;

pub use error::{Failure, FailureKind};
