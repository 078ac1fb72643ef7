//! ferry: turns a GitHub release into a safe deploy on AWS ECS.
//!
//! The flow of one run, module by module (the README's "How the code is laid out" is the
//! same map): [`cli`] parses, [`commands`] gathers inputs → `github::event` (what started
//! it) → `tag` (which environment) → `config` (that environment's file) → `aws::sts` (its
//! role) → `plan` (everything that will happen, computed first) → `run` executes it:
//! `promote` (copy the verified digest, `registry`) → `deploy` (register, update, follow,
//! roll back) → `smoke` → `report` (data) → `render` (words) and `github::actions`.
//!
//! The library's public surface is what the `ferry` binary needs; everything else is
//! internal, so it can change freely behind the CLI contract (exit codes, JSON shapes).

pub mod cli;
pub mod commands;
pub mod deadline;
pub mod error;
pub mod logging;
pub mod panic;

mod aws;
mod config;
mod deploy;
mod gate;
mod github;
pub mod iam;
mod inflight;
mod lease;
pub mod notify;
mod plan;
mod poll;
mod promote;
mod records;
mod redact;
mod registry;
mod render;
mod report;
mod retry;
mod run;
mod secret;
mod smoke;
mod status;
mod tag;
mod text;
mod validate;
mod wave;

pub use error::{Failure, FailureKind};
