//! `ferry iam-policy`: the least-privilege IAM documents ferry needs, computed from the
//! environment files (and, for what only AWS knows, the live task definitions).
//!
//! For each environment, three documents, and a fourth for a promotion source:
//!
//! - **role policy** (attach to `role.arn`): exactly the calls ferry makes with that role.
//!   ECR on exactly the environment's repository (read; push for an environment that
//!   receives promotions; push and manifest delete for the release records and claims), pull
//!   on exactly the source repository of a promotion, ECS on exactly its clusters and
//!   services (continuing paused deployments of ECS-native blue/green services), CodeDeploy
//!   on exactly the deployment groups of CodeDeploy blue/green services,
//!   `RegisterTaskDefinition`
//!   and its tag-on-create `TagResource` on exactly the live task-definition families, and
//!   `iam:PassRole` on exactly the task and execution roles the live task definitions use.
//!   `ecr:GetAuthorizationToken`, `ecs:DescribeTaskDefinition` and
//!   `ecs:RegisterTaskDefinition` cannot be scoped by AWS and say `"*"`.
//! - **trust policy** (the role's trust relationship): GitHub's OIDC provider in the role's
//!   account, audience `sts.amazonaws.com`, subject exactly
//!   `repo:<owner>/<repo>:environment:<name>` for the environment's own GitHub environment. A
//!   deploy assumes one role only: a production job never holds the staging role (which can
//!   deploy staging).
//! - **repository policy** (only for an environment others promote from; set it on its
//!   repository): lets exactly the roles of the environments promoting from it pull (the ECR
//!   read actions below, nothing else), since they read the verified image and its records
//!   with their own role. Across accounts ECR needs both this and the puller's role policy.
//! - **caller policy**: only for running ferry with stored credentials instead of GitHub OIDC
//!   (`AssumeRole` on the default chain): `sts:AssumeRole` on exactly the environment's role.
//! - **key policy** (only for an environment that signs its records): see `kms`.
//!
//! [`policies`] is pure (values in, `serde_json` documents out, statements and lists in a
//! fixed order); [`live_services`] is the one function that asks AWS.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Environment, Environments};

mod hold;
mod kms;
mod live;

pub use live::live_services;

/// The OIDC issuer of GitHub Actions.
pub const GITHUB_OIDC_HOST: &str = "token.actions.githubusercontent.com";

/// ECR actions a role needs to read its repository. ECR's mapping of OCI requests: manifest
/// GET/HEAD, `referrers/<digest>` → `BatchGetImage`; blob HEAD → `BatchCheckLayerAvailability`;
/// blob GET → `GetDownloadUrlForLayer`; `tags/list` → `ListImages`; blob upload →
/// `InitiateLayerUpload`, `UploadLayerPart`, `CompleteLayerUpload`; manifest PUT/DELETE →
/// `PutImage`/`BatchDeleteImage`.
pub const ECR_READ: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImages",
];

/// ECR actions a role needs to promote from another repository: manifests and referrers
/// (`BatchGetImage`), blobs (`GetDownloadUrlForLayer`, `BatchCheckLayerAvailability`), the
/// candidates' and records' tags (`ListImages`). Granted by the puller's role policy and,
/// across accounts, by the source repository's policy.
pub const ECR_PULL: &[&str] = &[
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:ListImages",
];

/// ECR actions a role needs to push a promoted image into its repository.
pub const ECR_PUSH: &[&str] = &[
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
];

/// ECR actions every environment's role needs for the release memory in its own repository:
/// push a record (and a claim) next to the image, delete its claim when the run ends (manifest
/// DELETE → `BatchDeleteImage`).
pub const ECR_RECORDS: &[&str] = &[
    "ecr:BatchDeleteImage",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
];

/// ECS actions on a service: read it, update it, follow and stop its deployments.
pub const ECS_SERVICE: &[&str] = &[
    "ecs:DescribeServices",
    "ecs:ListServiceDeployments",
    "ecs:UpdateService",
];

/// ECS actions on a service's deployments.
pub const ECS_SERVICE_DEPLOYMENT: &[&str] = &[
    "ecs:DescribeServiceDeployments",
    "ecs:StopServiceDeployment",
];

/// ECS actions on a service's revisions (which task definition a deployment ran).
pub const ECS_SERVICE_REVISION: &[&str] = &["ecs:DescribeServiceRevisions"];

/// CodeDeploy actions on the deployment group of a CodeDeploy blue/green service: read the
/// group, start, follow, continue (after the test-listener checks) and stop a deployment.
pub const CODEDEPLOY_GROUP: &[&str] = &[
    "codedeploy:BatchGetDeploymentGroups",
    "codedeploy:ContinueDeployment",
    "codedeploy:CreateDeployment",
    "codedeploy:GetDeployment",
    "codedeploy:GetDeploymentGroup",
    "codedeploy:GetDeploymentTarget",
    "codedeploy:ListDeployments",
    "codedeploy:StopDeployment",
];

/// What ferry learns from the live services of one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveServices {
    /// Task-definition families the services run (new revisions are registered in them).
    pub families: BTreeSet<String>,
    /// `taskRoleArn` and `executionRoleArn` of the live task definitions.
    pub pass_roles: BTreeSet<String>,
    /// CodeDeploy (application, deployment group) of the services it deploys.
    pub codedeploy_groups: BTreeSet<(String, String)>,
    /// `cluster/service` of the services with an ECS-native blue/green, linear or canary
    /// strategy (ferry continues their deployments past PAUSE hooks).
    pub native_blue_green: BTreeSet<String>,
}

/// The documents of one environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentPolicies {
    /// The environment's name.
    pub environment: String,
    /// The role the documents are for.
    pub role: String,
    /// Attach to the role (permissions).
    pub role_policy: Value,
    /// The role's trust relationship (GitHub OIDC).
    pub trust_policy: Value,
    /// The repository the repository policy is for (`host/name`), when others promote from
    /// this environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Set on that repository (`aws ecr set-repository-policy`): who may pull to promote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<Value>,
    /// For stored credentials instead of GitHub OIDC: what the caller needs.
    pub caller_policy: Value,
    /// Set on the records key (`aws kms put-key-policy`), when this environment signs records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_policy: Option<Value>,
}

/// Everything `ferry iam-policy` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IamPolicies {
    /// The repository (`owner/name`) whose deploy jobs the trust policies admit.
    pub github_repository: String,
    /// One entry per environment.
    pub environments: Vec<EnvironmentPolicies>,
    /// What the reader must know (placeholders left, assumptions made).
    pub notes: Vec<String>,
}

/// `aws`, `aws-cn` or `aws-us-gov`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn arn(env: &Environment, service: &str, resource: &str) -> String {
    format!(
        "arn:{}:{service}:{}:{}:{resource}",
        partition(&env.file.region),
        env.file.region,
        env.file.account_id
    )
}

/// The environments that promote from `env`, by name.
fn promoters<'a>(envs: &'a Environments, env: &Environment) -> Vec<&'a Environment> {
    envs.envs
        .values()
        .flat_map(|e| e.parts())
        .filter(|e| e.file.promote.as_ref().is_some_and(|p| p.from == env.name))
        .collect()
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    let mut actions: Vec<&str> = actions.to_vec();
    actions.sort();
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    })
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The permissions policy of `env`'s role (promoting from `source`, if any). `live` is
/// `None` when the live services were not read: the family and role resources are then
/// placeholders that say so.
pub fn role_policy(
    env: &Environment,
    source: Option<&Environment>,
    live: Option<&LiveServices>,
) -> Value {
    // Every image of the release has its own repository; records live in the first.
    let repos_of = |e: &Environment| -> Vec<String> {
        e.images
            .iter()
            .map(|i| arn(e, "ecr", &format!("repository/{}", i.repository)))
            .collect()
    };
    let repos = repos_of(env);
    let repo = repos.first().cloned().unwrap_or_default();
    let mut st = vec![
        statement("EcrLogin", &["ecr:GetAuthorizationToken"], vec!["*".into()]),
        statement("EcrReadRepository", ECR_READ, repos.clone()),
    ];
    if let Some(src) = source {
        st.push(statement(
            "EcrPullFromPromotionSource",
            ECR_PULL,
            repos_of(src),
        ));
    }
    if env.file.promote.is_some() {
        st.push(statement("EcrPushPromotedImage", ECR_PUSH, repos));
    }
    st.push(statement(
        "EcrReleaseRecordsAndClaims",
        ECR_RECORDS,
        vec![repo],
    ));
    if !env.file.services.is_empty() {
        let uniq = |v: Vec<String>| -> Vec<String> {
            v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
        };
        let services = uniq(
            env.file
                .services
                .iter()
                .map(|s| arn(env, "ecs", &format!("service/{}/{}", s.cluster, s.service)))
                .collect(),
        );
        let deployments = uniq(
            env.file
                .services
                .iter()
                .map(|s| {
                    arn(
                        env,
                        "ecs",
                        &format!("service-deployment/{}/{}/*", s.cluster, s.service),
                    )
                })
                .collect(),
        );
        let revisions = uniq(
            env.file
                .services
                .iter()
                .map(|s| {
                    arn(
                        env,
                        "ecs",
                        &format!("service-revision/{}/{}/*", s.cluster, s.service),
                    )
                })
                .collect(),
        );
        let clusters = uniq(
            env.file
                .services
                .iter()
                .map(|s| arn(env, "ecs", &format!("cluster/{}", s.cluster)))
                .collect(),
        );
        let tasks = uniq(
            env.file
                .services
                .iter()
                .map(|s| arn(env, "ecs", &format!("task/{}/*", s.cluster)))
                .collect(),
        );
        st.push(statement("EcsServices", ECS_SERVICE, services));
        st.push(statement(
            "EcsServiceDeployments",
            ECS_SERVICE_DEPLOYMENT,
            deployments,
        ));
        st.push(statement(
            "EcsServiceRevisions",
            ECS_SERVICE_REVISION,
            revisions,
        ));
        // ListTasks is authorised on the cluster through a condition key.
        let mut list_tasks = statement("EcsListTasks", &["ecs:ListTasks"], vec!["*".into()]);
        list_tasks["Condition"] = json!({ "ArnEquals": { "ecs:cluster": clusters } });
        st.push(list_tasks);
        st.push(statement("EcsDescribeTasks", &["ecs:DescribeTasks"], tasks));
        // ListTaskDefinitions finds a revision an interrupted run registered, to reuse it.
        st.push(statement(
            "EcsTaskDefinitions",
            &[
                "ecs:DescribeTaskDefinition",
                "ecs:ListTaskDefinitions",
                "ecs:RegisterTaskDefinition",
            ],
            vec!["*".into()],
        ));
        st.extend(hold::statements(env));
        if let Some(l) = live.filter(|l| !l.native_blue_green.is_empty()) {
            st.push(statement(
                "EcsContinuePausedDeployments",
                &["ecs:ContinueServiceDeployment"],
                l.native_blue_green
                    .iter()
                    .map(|s| arn(env, "ecs", &format!("service-deployment/{s}/*")))
                    .collect(),
            ));
        }
        if let Some(l) = live.filter(|l| !l.codedeploy_groups.is_empty()) {
            let apps: BTreeSet<String> = l
                .codedeploy_groups
                .iter()
                .map(|(app, _)| arn(env, "codedeploy", &format!("application:{app}")))
                .collect();
            st.push(statement(
                "CodeDeployFindGroups",
                &["codedeploy:ListApplications"],
                vec!["*".into()],
            ));
            st.push(statement(
                "CodeDeployListGroups",
                &["codedeploy:ListDeploymentGroups"],
                apps.into_iter().collect(),
            ));
            st.push(statement(
                "CodeDeployDeployments",
                CODEDEPLOY_GROUP,
                l.codedeploy_groups
                    .iter()
                    .map(|(app, g)| arn(env, "codedeploy", &format!("deploymentgroup:{app}/{g}")))
                    .collect(),
            ));
            st.push(statement(
                "CodeDeployConfigs",
                &["codedeploy:GetDeploymentConfig"],
                vec![arn(env, "codedeploy", "deploymentconfig:*")],
            ));
        }
        let families: Vec<String> = match live {
            Some(l) => l
                .families
                .iter()
                .map(|f| arn(env, "ecs", &format!("task-definition/{f}:*")))
                .collect(),
            None => vec![arn(
                env,
                "ecs",
                "task-definition/<FAMILY: run ferry iam-policy without --offline>:*",
            )],
        };
        let mut tag = statement("EcsTagNewRevisions", &["ecs:TagResource"], families);
        tag["Condition"] =
            json!({ "StringEquals": { "ecs:CreateAction": "RegisterTaskDefinition" } });
        st.push(tag);
        let roles: Vec<String> = match live {
            Some(l) => l.pass_roles.iter().cloned().collect(),
            None => vec![format!(
                "arn:{}:iam::{}:role/<TASK AND EXECUTION ROLES: run ferry iam-policy without --offline>",
                partition(&env.file.region),
                env.file.account_id
            )],
        };
        if !roles.is_empty() {
            let mut pass = statement("PassTaskRoles", &["iam:PassRole"], roles);
            pass["Condition"] =
                json!({ "StringEquals": { "iam:PassedToService": "ecs-tasks.amazonaws.com" } });
            st.push(pass);
        }
    }
    st.extend(kms::sign_statement(env));
    document(st)
}

/// The trust policy of `env`'s role: GitHub OIDC for the environment's own deploy jobs.
pub fn trust_policy(env: &Environment, github_repository: &str) -> Value {
    let subjects = vec![format!("repo:{github_repository}:environment:{}", env.name)];
    document(vec![json!({
        "Sid": "GithubActionsOidc",
        "Effect": "Allow",
        "Principal": {
            "Federated": format!(
                "arn:{}:iam::{}:oidc-provider/{GITHUB_OIDC_HOST}",
                partition(&env.file.region),
                env.file.account_id
            )
        },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                format!("{GITHUB_OIDC_HOST}:aud"): "sts.amazonaws.com",
                format!("{GITHUB_OIDC_HOST}:sub"): subjects,
            }
        }
    })])
}

/// What a caller with stored credentials needs to deploy to `env`: its role, nothing else.
pub fn caller_policy(env: &Environment) -> Value {
    document(vec![statement(
        "AssumeFerryRole",
        &["sts:AssumeRole"],
        vec![env.file.role.arn.clone()],
    )])
}

/// The policy of `env`'s repository when others promote from it: their roles may pull, to
/// read the verified image and the records of the promotion gate. `None` when nobody does.
pub fn repository_policy(envs: &Environments, env: &Environment) -> Option<Value> {
    let mut roles: Vec<String> = promoters(envs, env)
        .iter()
        .map(|e| e.file.role.arn.clone())
        .collect();
    if roles.is_empty() {
        return None;
    }
    roles.sort();
    roles.dedup();
    let mut actions = ECR_PULL.to_vec();
    actions.sort();
    Some(document(vec![json!({
        "Sid": "FerryPromotionPull",
        "Effect": "Allow",
        "Principal": { "AWS": roles },
        "Action": actions,
    })]))
}

/// Every document for `only` (or every environment), in environment-name order.
pub fn policies(
    envs: &Environments,
    only: Option<&str>,
    github_repository: &str,
    live: &BTreeMap<String, LiveServices>,
) -> Result<IamPolicies> {
    if let Some(name) = only {
        envs.get(name)?;
    }
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for env in envs.envs.values().flat_map(|e| e.parts()) {
        if only.is_some_and(|o| o != env.name) {
            continue;
        }
        let l = live.get(&env.display_name());
        if l.is_none() && !env.file.services.is_empty() {
            notes.push(format!(
                "{}: the task-definition families and the roles for iam:PassRole are placeholders, and CodeDeploy and ECS blue/green grants are left out: they come from the live services (run without --offline)",
                env.display_name()
            ));
        }
        let repository_policy = repository_policy(envs, env);
        out.push(EnvironmentPolicies {
            environment: env.display_name(),
            role: env.file.role.arn.clone(),
            role_policy: role_policy(env, envs.source_of(env), l),
            trust_policy: trust_policy(env, github_repository),
            repository: repository_policy
                .is_some()
                .then(|| env.image_locations().join(" and ")),
            repository_policy,
            caller_policy: caller_policy(env),
            key_policy: kms::key_policy(env),
        });
    }
    notes.push(format!(
        "trust policies expect deploy jobs with `environment: <name>` (GitHub environments named like ferry's) in {github_repository}, and the OIDC provider {GITHUB_OIDC_HOST} in each account"
    ));
    Ok(IamPolicies {
        github_repository: github_repository.to_string(),
        environments: out,
        notes,
    })
}

/// The whole command: load, read the live services unless `offline`, compute.
pub async fn run(
    envs_dir: &std::path::Path,
    only: Option<&str>,
    github_repository: Option<&str>,
    offline: bool,
) -> Result<IamPolicies> {
    let envs = crate::config::load(envs_dir)?;
    let repo = github_repository
        .filter(|r| !r.is_empty())
        .unwrap_or("OWNER/REPO");
    let mut live = BTreeMap::new();
    if !offline {
        for env in envs.envs.values().flat_map(|e| e.parts()) {
            if only.is_some_and(|o| o != env.name) || env.file.services.is_empty() {
                continue;
            }
            let l = live_services(env)
                .await
                .with_context(|| format!("reading the live services of {}", env.display_name()))?;
            live.insert(env.display_name(), l);
        }
    }
    let mut out = policies(&envs, only, repo, &live)?;
    if repo == "OWNER/REPO" {
        out.notes.insert(0, "no GitHub repository given (--repository or $GITHUB_REPOSITORY): the trust policies say OWNER/REPO".into());
    }
    Ok(out)
}

/// Human form: each document under a heading saying where it goes.
pub fn text(p: &IamPolicies) -> String {
    let mut s = String::new();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    for e in &p.environments {
        s.push_str(&format!(
            "## {}: permissions policy of {}\n{}\n\n## {}: trust policy of {}\n{}\n\n",
            e.environment,
            e.role,
            pretty(&e.role_policy),
            e.environment,
            e.role,
            pretty(&e.trust_policy),
        ));
        if let (Some(repo), Some(doc)) = (&e.repository, &e.repository_policy) {
            s.push_str(&format!(
                "## {}: repository policy of {repo} (aws ecr set-repository-policy: who may pull to promote)\n{}\n\n",
                e.environment,
                pretty(doc),
            ));
        }
        if let (Some(k), Some(doc)) = (&kms::key_of(e), &e.key_policy) {
            s.push_str(&format!(
                "## {}: key policy of {k} (aws kms put-key-policy: only the deploy role signs records)\n{}\n\n",
                e.environment,
                pretty(doc),
            ));
        }
        s.push_str(&format!(
            "## {}: caller policy (only without GitHub OIDC: the identity that runs ferry)\n{}\n\n",
            e.environment,
            pretty(&e.caller_policy),
        ));
    }
    for n in &p.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// Every action a document allows, `service:Action`, sorted (for checks and tests).
pub fn actions(document: &Value) -> Vec<String> {
    let mut out: Vec<String> = document["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|st| match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
