//! ferry driven as a user would, against the local world (`scripts/world`: moto, two real
//! registries, the ECS simulator) and its own receivers and proxies: one test binary, so the
//! AWS SDK is linked once.
//!
//! The offline CLI contract (bad input, exit codes, `--help`) is `tests/cli.rs`; it needs no
//! world.
#![allow(clippy::unwrap_used)]

mod action;
mod bluegreen;
mod common;
mod copy;
mod deploy;
mod github;
mod hold;
mod iam;
mod images;
mod lease;
mod memory;
mod noaws;
mod notify;
mod plan;
mod preflight;
mod reruns;
mod signing;
mod tls;
mod verdicts;
mod waves;
mod waves_stopped;
mod waves_told;
