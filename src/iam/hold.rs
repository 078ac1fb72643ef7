//! The grants of the auto-scaling hold (`crate::deploy::hold`).

use serde_json::Value;

use super::{arn, statement};
use crate::config::Environment;

/// The auto-scaling hold (`deploy::hold`): read and set a service's suspended state, mark the
/// hold on its scalable target. Target ARNs carry a random id, so the grant names the
/// account's targets; DescribeScalableTargets has no resource. None when the hold is off.
pub(super) fn statements(env: &Environment) -> Vec<Value> {
    if !env.file.deploy.holds_autoscaling() {
        return Vec::new();
    }
    const HOLD: &[&str] = &[
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:TagResource",
        "application-autoscaling:UntagResource",
        "application-autoscaling:ListTagsForResource",
    ];
    let read = &["application-autoscaling:DescribeScalableTargets"];
    let targets = arn(env, "application-autoscaling", "scalable-target/*");
    vec![
        statement("AutoScalingReadTargets", read, vec!["*".into()]),
        statement("AutoScalingHold", HOLD, vec![targets]),
    ]
}
