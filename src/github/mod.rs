//! Everything GitHub: what started the run (`event`: a release or a workflow dispatch), the
//! job's OIDC token for AWS (`oidc`), the Actions side channels (`actions`: outputs, step
//! summary, annotations), and the run's GitHub deployment and dispatch release lookup
//! (`deployments`, through octocrab).

pub mod actions;
pub mod deployments;
pub mod event;
pub mod oidc;
