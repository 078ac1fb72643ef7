//! Field-level checks of one environment file: each problem reads "field `x`: what is wrong;
//! how to fix", and every problem of every file is collected before any is reported.

use super::{Environment, MatchKind};

fn is_name_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Field-level checks of one file. Each entry reads "field `x`: what is wrong; how to fix".
pub fn validate(env: &Environment) -> Vec<String> {
    let f = &env.file;
    let mut p = Vec::new();
    if env.name.is_empty() || !env.name.bytes().all(is_name_char) {
        p.push(format!(
            "file name {:?}: environment names use lowercase letters, digits, - and _ (rename the file)",
            env.name
        ));
    }
    if !is_account_id(&f.account_id) {
        p.push(format!("field `account_id`: {:?} is not a 12-digit AWS account id (quote it: \"123456789012\")", f.account_id));
    }
    if !is_region(&f.region) {
        p.push(format!(
            "field `region`: {:?} is not an AWS region name like \"eu-west-1\"",
            f.region
        ));
    }
    match parse_role_arn(&f.role.arn) {
        None => p.push(format!(
            "field `role.arn`: {:?} is not an IAM role ARN; write arn:aws:iam::{}:role/NAME",
            f.role.arn, f.account_id
        )),
        Some(acct) if acct != f.account_id && is_account_id(&f.account_id) => p.push(format!(
            "field `role.arn`: the role is in account {acct} but `account_id` is {}; ferry deploys with the environment's own role",
            f.account_id
        )),
        Some(_) => {}
    }
    if let Some(x) = &f.role.external_id {
        let ok = (2..=1224).contains(&x.len())
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
        if !ok {
            p.push("field `role.external_id`: must be 2-1224 characters of letters, digits and +=,.@:/-_".into());
        }
    }
    if let Some(d) = f.role.session_duration_seconds {
        if !(900..=43200).contains(&d) {
            p.push(format!("field `role.session_duration_seconds`: {d} is outside 900..=43200 (15 min to 12 h)"));
        }
    }
    if let Some(s) = &f.role.session_name {
        let ok = (2..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
        if !ok {
            p.push(format!("field `role.session_name`: {s:?} must be 2-64 characters of letters, digits and +=,.@-_"));
        }
    }
    match (f.release.kind, &f.release.prerelease_words) {
        (MatchKind::Final, Some(_)) => p.push(
            "field `release.prerelease_words`: only for `match = \"prerelease\"`; remove it".into(),
        ),
        (MatchKind::Prerelease, Some(words)) => {
            if words.is_empty() {
                p.push("field `release.prerelease_words`: empty; remove it to accept the default [\"rc\"]".into());
            }
            for w in words {
                if w.is_empty() || !w.bytes().all(|b| b.is_ascii_lowercase()) {
                    p.push(format!("field `release.prerelease_words`: {w:?} must be a lowercase word (a-z), e.g. \"rc\""));
                }
            }
        }
        _ => {}
    }
    match (f.release.kind, &f.promote) {
        (MatchKind::Final, None) => p.push(
            "field `promote.from`: missing; a final-release environment never rebuilds, it promotes the digest verified in the pre-release environment — add [promote] from = \"staging\"".into(),
        ),
        (MatchKind::Prerelease, Some(_)) => {
            p.push("field `promote`: only final-release environments promote; remove [promote]".into())
        }
        _ => {}
    }
    if let Some(m) = f.promote.as_ref().and_then(|p| p.soak_minutes) {
        if m > 10_080 {
            p.push(format!("field `promote.soak_minutes`: {m} is more than a week (10080); write the minutes a candidate must have run in the source environment, e.g. 30"));
        }
    }
    p.extend(super::images::check(env));
    if f.services.is_empty() {
        p.push("field `services`: no services; add at least one [[services]] with cluster, service and container".into());
    }
    for (i, s) in f.services.iter().enumerate() {
        for (field, v) in [
            ("cluster", &s.cluster),
            ("service", &s.service),
            ("container", &s.container),
        ] {
            if v.trim().is_empty() || v.len() > 255 {
                p.push(format!(
                    "field `services[{i}].{field}`: must be a non-empty name"
                ));
            }
        }
        if f.services[..i]
            .iter()
            .any(|o| o.cluster == s.cluster && o.service == s.service)
        {
            p.push(format!(
                "field `services[{i}]`: service {}/{} is listed twice",
                s.cluster, s.service
            ));
        }
    }
    for (i, s) in f.services.iter().enumerate() {
        let Some(cd) = &s.codedeploy else { continue };
        for (field, v) in [
            ("application", &cd.application),
            ("deployment_group", &cd.deployment_group),
        ] {
            if v.as_ref()
                .is_some_and(|v| v.trim().is_empty() || v.len() > 100)
            {
                p.push(format!(
                    "field `services[{i}].codedeploy.{field}`: must be a name of 1-100 characters"
                ));
            }
        }
        if cd.deployment_group.is_some() != cd.application.is_some() {
            p.push(format!("field `services[{i}].codedeploy`: name both `application` and `deployment_group`, or neither (ferry then finds the group whose ecsServices names {}/{})", s.cluster, s.service));
        }
        for (event, function) in &cd.hooks {
            if !super::HOOK_EVENTS.contains(&event.as_str()) {
                p.push(format!(
                    "field `services[{i}].codedeploy.hooks.{event}`: not an ECS AppSpec hook; use one of {}",
                    super::HOOK_EVENTS.join(", ")
                ));
            }
            if function.trim().is_empty() {
                p.push(format!("field `services[{i}].codedeploy.hooks.{event}`: name the Lambda function (name or ARN)"));
            }
        }
    }
    for (i, c) in f.smoke.iter().enumerate() {
        for (field, u) in
            std::iter::once(("url", &c.url)).chain(c.test_url.iter().map(|u| ("test_url", u)))
        {
            match url::Url::parse(u) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                Ok(u) => p.push(format!(
                    "field `smoke[{i}].{field}`: scheme {:?} is not http or https",
                    u.scheme()
                )),
                Err(e) => p.push(format!(
                    "field `smoke[{i}].{field}`: {u:?} is not a URL: {e}"
                )),
            }
        }
        if let Some(svc) = &c.service {
            if c.test_url.is_none() {
                p.push(format!("field `smoke[{i}].service`: only with `test_url` (it says whose test listener that is); remove it"));
            } else if !f.services.iter().any(|s| c.tests_service(s)) {
                p.push(format!("field `smoke[{i}].service`: {svc:?} is not one of this environment's [[services]]; write `service` or `cluster/service`"));
            }
        }
        if !(100..=599).contains(&c.expect_status) {
            p.push(format!(
                "field `smoke[{i}].expect_status`: {} is not an HTTP status",
                c.expect_status
            ));
        }
        if c.timeout_seconds == 0 {
            p.push(format!(
                "field `smoke[{i}].timeout_seconds`: must be at least 1"
            ));
        }
        if c.deadline_seconds < c.timeout_seconds {
            p.push(format!(
                "field `smoke[{i}].deadline_seconds`: {} is shorter than timeout_seconds ({})",
                c.deadline_seconds, c.timeout_seconds
            ));
        }
        if !(1..=20).contains(&c.consecutive) {
            p.push(format!(
                "field `smoke[{i}].consecutive`: {} is not between 1 and 20",
                c.consecutive
            ));
        }
        if let Some(v) = &c.version_field {
            if v.is_empty() || v.split('.').any(str::is_empty) {
                p.push(format!("field `smoke[{i}].version_field`: {v:?} must be a dotted path like \"version\" or \"build.version\""));
            }
        }
    }
    if f.deploy.rollout_timeout_seconds == Some(0) {
        p.push("field `deploy.rollout_timeout_seconds`: must be at least 1 (or remove it to derive it from the service)".into());
    }
    p.extend(crate::notify::validate(&f.notify));
    p.extend(super::records::validate(env));
    p
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The account id of an IAM role ARN, if `arn` is one.
pub fn parse_role_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    // Exactly the partitions IAM has; `aws-evil` is not one of them.
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    (is_account_id(account) && !name.is_empty() && !name.ends_with('/')).then_some(account)
}
