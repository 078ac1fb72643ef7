//! The grants of the auto-scaling hold (`crate::deploy::hold`).

use serde_json::Value;

use super::{arn, statement};
use crate::config::Environment;

/// The auto-scaling hold (`deploy::hold`): read and set a service's suspended state, mark the
/// hold on its scalable target. Target ARNs carry a random id, so the grant names the
/// account's targets; DescribeScalableTargets has no resource.
pub(super) fn statements(env: &Environment) -> [Value; 2] {
    const HOLD: &[&str] = &[
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:TagResource",
        "application-autoscaling:UntagResource",
        "application-autoscaling:ListTagsForResource",
    ];
    let read = &["application-autoscaling:DescribeScalableTargets"];
    let targets = arn(env, "application-autoscaling", "scalable-target/*");
    [
        statement("AutoScalingReadTargets", read, vec!["*".into()]),
        statement("AutoScalingHold", HOLD, vec![targets]),
    ]
}
