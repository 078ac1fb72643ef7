//! ferry driven as a user would, against the local world (`scripts/world`: moto, two real
#![allow(clippy::unwrap_used)]
//! registries, the ECS simulator): one test binary, so the AWS SDK is linked once.
//!
//! The offline CLI contract (bad input, exit codes, `--help`) is `tests/cli.rs`; it needs no
//! world.

mod common;
mod copy;
mod deploy;
mod memory;
mod plan;
mod verdicts;
