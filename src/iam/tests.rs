//! Unit tests of the IAM documents: fixed environments in, exact documents out.

use super::*;

fn envs() -> (tempfile::TempDir, Environments) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("staging.toml"),
        "account_id = \"111111111111\"\nregion = \"eu-west-1\"\n[role]\narn = \"arn:aws:iam::111111111111:role/ferry-staging\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"shop/api\"\n[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("production.toml"),
        "account_id = \"222222222222\"\nregion = \"eu-west-1\"\n[role]\narn = \"arn:aws:iam::222222222222:role/ferry-production\"\n[release]\nmatch = \"final\"\n[promote]\nfrom = \"staging\"\n[image]\nrepository = \"shop/api\"\n[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n[[services]]\ncluster = \"shop\"\nservice = \"worker\"\ncontainer = \"worker\"\n",
    )
    .unwrap();
    let e = crate::config::load(dir.path()).unwrap();
    (dir, e)
}

fn live() -> BTreeMap<String, LiveServices> {
    BTreeMap::from([(
        "production".to_string(),
        LiveServices {
            families: BTreeSet::from(["shop-api".into(), "shop-worker".into()]),
            pass_roles: BTreeSet::from([
                "arn:aws:iam::222222222222:role/api-task".into(),
                "arn:aws:iam::222222222222:role/ecs-exec".into(),
            ]),
            codedeploy_groups: BTreeSet::from([("shop".into(), "shop-worker".into())]),
            native_blue_green: BTreeSet::from(["shop/api".into()]),
        },
    )])
}

#[test]
fn production_role_is_scoped_to_its_repository_services_families_and_roles() {
    let (_d, envs) = envs();
    let p = policies(&envs, Some("production"), "acme/shop", &live()).unwrap();
    assert_eq!(p.environments.len(), 1);
    let doc = &p.environments[0].role_policy;
    let sid = |s: &str| {
        doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["Sid"] == s)
            .unwrap_or_else(|| panic!("no statement {s}: {doc:#}"))
            .clone()
    };
    assert_eq!(sid("EcrLogin")["Resource"], json!(["*"]));
    assert_eq!(
        sid("EcrReadRepository")["Resource"],
        json!(["arn:aws:ecr:eu-west-1:222222222222:repository/shop/api"])
    );
    assert_eq!(
        sid("EcrPushPromotedImage")["Action"],
        json!([
            "ecr:CompleteLayerUpload",
            "ecr:InitiateLayerUpload",
            "ecr:PutImage",
            "ecr:UploadLayerPart"
        ])
    );
    assert_eq!(
        sid("EcsServices")["Resource"],
        json!([
            "arn:aws:ecs:eu-west-1:222222222222:service/shop/api",
            "arn:aws:ecs:eu-west-1:222222222222:service/shop/worker"
        ])
    );
    assert_eq!(
        sid("EcsListTasks")["Condition"]["ArnEquals"]["ecs:cluster"],
        json!(["arn:aws:ecs:eu-west-1:222222222222:cluster/shop"]),
        "one cluster, listed once"
    );
    assert_eq!(
        sid("EcsTagNewRevisions")["Resource"],
        json!([
            "arn:aws:ecs:eu-west-1:222222222222:task-definition/shop-api:*",
            "arn:aws:ecs:eu-west-1:222222222222:task-definition/shop-worker:*"
        ])
    );
    assert_eq!(
        sid("PassTaskRoles")["Resource"],
        json!([
            "arn:aws:iam::222222222222:role/api-task",
            "arn:aws:iam::222222222222:role/ecs-exec"
        ])
    );
    // The promotion reads staging's repository with production's own role: pull only.
    assert_eq!(
        sid("EcrPullFromPromotionSource")["Resource"],
        json!(["arn:aws:ecr:eu-west-1:111111111111:repository/shop/api"])
    );
    assert_eq!(
        sid("EcrPullFromPromotionSource")["Action"],
        json!([
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:ListImages"
        ])
    );
    // Blue/green: CodeDeploy on exactly the worker's deployment group (and its application,
    // to find it), continuing paused ECS-native deployments of exactly the api service.
    assert_eq!(
        sid("CodeDeployDeployments")["Resource"],
        json!(["arn:aws:codedeploy:eu-west-1:222222222222:deploymentgroup:shop/shop-worker"])
    );
    assert_eq!(
        sid("CodeDeployListGroups")["Resource"],
        json!(["arn:aws:codedeploy:eu-west-1:222222222222:application:shop"])
    );
    assert_eq!(
        sid("EcsContinuePausedDeployments")["Resource"],
        json!(["arn:aws:ecs:eu-west-1:222222222222:service-deployment/shop/api/*"])
    );
    assert!(sid("EcsTaskDefinitions")["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("ecs:ListTaskDefinitions")));
    // The auto-scaling hold: set and mark the suspended state of the account's targets.
    assert_eq!(
        sid("AutoScalingHold")["Resource"],
        json!(["arn:aws:application-autoscaling:eu-west-1:222222222222:scalable-target/*"])
    );
    assert_eq!(
        sid("AutoScalingReadTargets")["Action"],
        json!(["application-autoscaling:DescribeScalableTargets"])
    );
    assert!(p.notes.iter().all(|n| !n.contains("placeholders")));
    // The caller (stored credentials) may assume exactly production's role: a production
    // deploy never holds the staging role.
    assert_eq!(
        p.environments[0].caller_policy["Statement"][0]["Resource"],
        json!(["arn:aws:iam::222222222222:role/ferry-production"])
    );
    // Nobody promotes from production: it has no repository policy to set.
    assert_eq!(p.environments[0].repository_policy, None);
    assert_eq!(p.environments[0].repository, None);
}

#[test]
fn staging_repository_lets_exactly_production_pull() {
    let (_d, envs) = envs();
    let p = policies(&envs, Some("staging"), "acme/shop", &BTreeMap::new()).unwrap();
    let staging = &p.environments[0];
    assert_eq!(
        staging.repository.as_deref(),
        Some("111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api")
    );
    assert_eq!(
        staging.repository_policy,
        Some(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "FerryPromotionPull",
                "Effect": "Allow",
                "Principal": { "AWS": ["arn:aws:iam::222222222222:role/ferry-production"] },
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:ListImages"
                ]
            }]
        }))
    );
    // No push, no delete for anyone else: promotion is read-only on the source.
    let acts = actions(staging.repository_policy.as_ref().unwrap());
    assert!(acts
        .iter()
        .all(|a| !a.contains("Put") && !a.contains("Delete") && !a.contains("Upload")));
    let text = text(&p);
    assert!(
        text.contains("## staging: repository policy of 111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/api"),
        "{text}"
    );
}

#[test]
fn staging_reads_only_and_trusts_only_its_own_jobs() {
    let (_d, envs) = envs();
    let p = policies(&envs, None, "acme/shop", &BTreeMap::new()).unwrap();
    let names: Vec<&str> = p
        .environments
        .iter()
        .map(|e| e.environment.as_str())
        .collect();
    assert_eq!(names, ["production", "staging"]);
    let staging = &p.environments[1];
    let acts = actions(&staging.role_policy);
    // Staging pushes no image, but its release records and claims (and deletes its claims).
    for a in ["ecr:PutImage", "ecr:BatchDeleteImage", "ecr:BatchGetImage"] {
        assert!(acts.iter().any(|x| x == a), "{a} missing: {acts:?}");
    }
    assert!(
        !acts.iter().any(|a| a == "ecr:BatchDeleteRepository"),
        "{acts:?}"
    );
    let cond = &staging.trust_policy["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(
        cond["token.actions.githubusercontent.com:sub"],
        json!(["repo:acme/shop:environment:staging"]),
        "production's jobs pull through the repository policy, never with the staging role"
    );
    assert_eq!(
        cond["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    assert_eq!(
        staging.trust_policy["Statement"][0]["Principal"]["Federated"],
        "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
    );
    let prod_sub = &p.environments[0].trust_policy["Statement"][0]["Condition"]["StringEquals"]
        ["token.actions.githubusercontent.com:sub"];
    assert_eq!(prod_sub, &json!(["repo:acme/shop:environment:production"]));
    // Offline: the live parts are visible placeholders, and a note says so.
    assert!(serde_json::to_string(&staging.role_policy)
        .unwrap()
        .contains("<TASK AND EXECUTION ROLES"));
    assert!(p.notes.iter().any(|n| n.starts_with("staging: ")));
}

#[test]
fn output_is_deterministic_and_names_unknown_environments() {
    let (_d, envs) = envs();
    let a = serde_json::to_string(&policies(&envs, None, "a/b", &live()).unwrap()).unwrap();
    let b = serde_json::to_string(&policies(&envs, None, "a/b", &live()).unwrap()).unwrap();
    assert_eq!(a, b);
    let err = policies(&envs, Some("qa"), "a/b", &live()).unwrap_err();
    assert!(
        err.to_string().contains("no environment named \"qa\""),
        "{err}"
    );
}

#[test]
fn partitions() {
    assert_eq!(partition("cn-north-1"), "aws-cn");
    assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    assert_eq!(partition("eu-west-1"), "aws");
}

#[test]
fn a_signing_environment_signs_with_its_key_and_nobody_else_may() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use base64::Engine as _;
    let (dir, _) = envs();
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .encode(pair.public_key().as_der().unwrap().as_ref());
    let key = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let path = dir.path().join("staging.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}[records]\nsigning_key = \"{key}\"\npublic_key = \"-----BEGIN PUBLIC KEY----- {pem} -----END PUBLIC KEY-----\"\n"),
    )
    .unwrap();
    let envs = crate::config::load(dir.path()).unwrap();
    let p = policies(&envs, None, "acme/shop", &live()).unwrap();
    let (prod, staging) = (&p.environments[0], &p.environments[1]);
    assert_eq!(staging.environment, "staging");
    let sign = staging.role_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "RecordsSign")
        .unwrap();
    assert_eq!(sign["Action"], json!(["kms:Sign"]));
    assert_eq!(sign["Resource"], json!([key]));
    let kp = staging.key_policy.as_ref().unwrap();
    assert_eq!(
        kp["Statement"][1]["Principal"]["AWS"],
        "arn:aws:iam::111111111111:role/ferry-staging"
    );
    assert_eq!(kp["Statement"][2]["Effect"], "Deny");
    assert_eq!(
        kp["Statement"][2]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
        "arn:aws:iam::111111111111:role/ferry-staging"
    );
    // Administration never includes signing.
    assert!(!actions(kp).is_empty());
    assert!(!kp["Statement"][0]["Action"]
        .to_string()
        .contains("kms:Sign\""));
    // Production verifies locally: no KMS grant, no key policy.
    assert!(!actions(&prod.role_policy)
        .iter()
        .any(|a| a.starts_with("kms:")));
    assert!(prod.key_policy.is_none());
    assert!(
        text_of(&p).contains("## staging: key policy of arn:aws:kms:eu-west-1:111111111111:key/")
    );
}

fn text_of(p: &IamPolicies) -> String {
    text(p)
}

/// A release of two images to two targets in two accounts: one role per target, each with
/// every repository of its own account and region, and staging lets both pull.
#[test]
fn every_target_has_its_role_and_every_image_its_repository() {
    let (d, _) = envs();
    std::fs::write(
        d.path().join("production.toml"),
        "account_id = \"222222222222\"\nregion = \"eu-west-1\"\n[role]\narn = \"arn:aws:iam::222222222222:role/ferry-production\"\n[release]\nmatch = \"final\"\n[promote]\nfrom = \"staging\"\n[[images]]\nname = \"api\"\nrepository = \"shop/api\"\n[[images]]\nname = \"worker\"\nrepository = \"shop/worker\"\n[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n[[services]]\ncluster = \"shop\"\nservice = \"worker\"\ncontainer = \"worker\"\nimage = \"worker\"\n[[targets]]\nname = \"eu\"\nregion = \"eu-west-1\"\n[[targets]]\nname = \"us\"\nregion = \"us-east-1\"\naccount_id = \"333333333333\"\nrole = { arn = \"arn:aws:iam::333333333333:role/ferry-production\" }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("staging.toml"),
        "account_id = \"111111111111\"\nregion = \"eu-west-1\"\n[role]\narn = \"arn:aws:iam::111111111111:role/ferry-staging\"\n[release]\nmatch = \"prerelease\"\n[[images]]\nname = \"api\"\nrepository = \"shop/api\"\n[[images]]\nname = \"worker\"\nrepository = \"shop/worker\"\n[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n[[services]]\ncluster = \"shop\"\nservice = \"worker\"\ncontainer = \"worker\"\nimage = \"worker\"\n",
    )
    .unwrap();
    let envs = crate::config::load(d.path()).unwrap();
    let p = policies(&envs, None, "acme/shop", &BTreeMap::new()).unwrap();
    let names: Vec<&str> = p
        .environments
        .iter()
        .map(|e| e.environment.as_str())
        .collect();
    assert_eq!(names, ["production/eu", "production/us", "staging"]);
    let us = &p.environments[1];
    assert_eq!(us.role, "arn:aws:iam::333333333333:role/ferry-production");
    let push = us.role_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["Sid"] == "EcrPushPromotedImage")
        .unwrap()["Resource"]
        .clone();
    assert_eq!(
        push,
        json!([
            "arn:aws:ecr:us-east-1:333333333333:repository/shop/api",
            "arn:aws:ecr:us-east-1:333333333333:repository/shop/worker"
        ])
    );
    let pull = p.environments[2].repository_policy.as_ref().unwrap();
    assert_eq!(
        pull["Statement"][0]["Principal"]["AWS"],
        json!([
            "arn:aws:iam::222222222222:role/ferry-production",
            "arn:aws:iam::333333333333:role/ferry-production"
        ])
    );
}
