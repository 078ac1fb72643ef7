//! Everything GitHub: what started the run (`event`: a release or a workflow dispatch), the
//! job's OIDC token for AWS (`oidc`), and the Actions side channels (`actions`: outputs, step
//! summary, annotations).

pub mod actions;
pub mod event;
pub mod oidc;
