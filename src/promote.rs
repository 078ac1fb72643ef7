//! Promotion: copying the exact digest verified in the source environment into the target
//! environment's repository, all with the target's role: it reads the source repository
//! through that repository's policy, so the target's jobs never hold the source's role.

use anyhow::{Context, Result};

use crate::config::Environment;
use crate::registry::copy::{self, CopyOutcome, Side};

/// What a promotion did.
pub type PromoteOutcome = CopyOutcome;

/// A client for `source_env`'s registry with `target_env`'s identity (`sdk`): the promotion's
/// reads (tags, records, the image) are made by the role that deploys the target.
pub async fn source_client(
    sdk: &aws_config::SdkConfig,
    source_env: &Environment,
    target_env: &Environment,
) -> Result<crate::registry::RegistryClient> {
    crate::registry::ecr::ecr_client(sdk, &source_env.registry_host())
        .await
        .with_context(|| {
            format!(
                "registry credentials of {}'s role for {}'s registry ({}); {} reads {}'s repository through its repository policy (`ferry iam-policy --environment {}` prints it)",
                target_env.name,
                source_env.name,
                source_env.registry_host(),
                target_env.name,
                source_env.name,
                source_env.name
            )
        })
}

/// Copies `source_tag` (which must still be `expected_digest`) of the image `name` from the
/// source environment's repository for it to the target's, tagged `target_tag`; a no-op when
/// already there.
pub async fn promote(
    source_env: &Environment,
    target_env: &Environment,
    name: &str,
    source_tag: &str,
    expected_digest: &str,
    target_tag: &str,
) -> Result<PromoteOutcome> {
    let repo_of = |env: &Environment| {
        env.image(name)
            .or_else(|| env.images.first().filter(|_| env.images.len() == 1))
            .map(|i| i.repository.clone())
            .with_context(|| format!("{} has no image named {name:?}", env.name))
    };
    let (source_repo, target_repo) = (repo_of(source_env)?, repo_of(target_env)?);
    // One identity: the target's role reads the source repository through its repository
    // policy, so a production job never holds the staging role.
    let dst_sdk = crate::aws::sts::environment_config(target_env).await?;
    let src = source_client(&dst_sdk, source_env, target_env).await?;
    let dst = crate::registry::ecr::ecr_client(&dst_sdk, &target_env.registry_host())
        .await
        .with_context(|| {
            format!(
                "registry credentials for {} ({})",
                target_env.name,
                target_env.registry_host()
            )
        })?;
    let out = copy::copy(
        &Side {
            client: &src,
            repository: &source_repo,
        },
        source_tag,
        &Side {
            client: &dst,
            repository: &target_repo,
        },
        Some(target_tag),
        Some(expected_digest),
    )
    .await?;
    if out.already_done {
        tracing::info!(
            "promotion: {target_repo}:{target_tag} already points at {} in {}; nothing copied",
            out.digest,
            target_env.name
        );
    } else {
        tracing::info!(
            "promotion: {target_repo}@{} copied and verified ({} blobs copied, {} mounted, {} already there; {:.1} MiB in {:.1}s)",
            out.digest,
            out.blobs_copied,
            out.blobs_mounted,
            out.blobs_skipped,
            out.bytes_copied as f64 / 1048576.0,
            out.seconds
        );
    }
    Ok(out)
}

/// Options of `ferry copy`.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Plain http for both sides, for registries on loopback only.
    pub insecure: bool,
    /// Plain http for the source only (loopback only).
    pub src_insecure: bool,
    /// Plain http for the destination only (loopback only).
    pub dst_insecure: bool,
    pub source_role: Option<String>,
    pub target_role: Option<String>,
}

/// `ferry copy SRC DST`: the promotion engine between any two references.
pub async fn copy_images(src: &str, dst: &str, opts: &CopyOptions) -> Result<PromoteOutcome> {
    use crate::error::Failure;
    use crate::registry::ImageName;
    let s = ImageName::parse(src).map_err(|e| Failure::invalid(format!("source: {e}")))?;
    let d = ImageName::parse(dst).map_err(|e| Failure::invalid(format!("destination: {e}")))?;
    let (src_insecure, dst_insecure) = (
        opts.insecure || opts.src_insecure,
        opts.insecure || opts.dst_insecure,
    );
    let src_client = client_for(&s, src_insecure, opts.source_role.as_deref(), "SRC_").await?;
    let dst_client =
        if s.host == d.host && opts.source_role == opts.target_role && src_insecure == dst_insecure
        {
            src_client.clone()
        } else {
            client_for(&d, dst_insecure, opts.target_role.as_deref(), "DST_").await?
        };
    let out = copy::copy(
        &Side {
            client: &src_client,
            repository: &s.repository,
        },
        s.reference(),
        &Side {
            client: &dst_client,
            repository: &d.repository,
        },
        d.tag.as_deref(),
        s.digest.as_deref().or(d.digest.as_deref()),
    )
    .await?;
    Ok(out)
}

async fn client_for(
    name: &crate::registry::ImageName,
    insecure: bool,
    role: Option<&str>,
    prefix: &str,
) -> Result<crate::registry::RegistryClient> {
    use crate::error::Failure;
    use crate::registry::{Credentials, RegistryClient};
    let mapped = std::env::var(crate::registry::ENDPOINTS_ENV)
        .unwrap_or_default()
        .contains(&format!("{}=", name.host));
    let base = if mapped || name.ecr().is_some() {
        crate::registry::endpoint_url(&name.host)?
    } else if insecure {
        let url = url::Url::parse(&format!("http://{}", name.host))
            .map_err(|_| Failure::invalid(format!("{:?} is not a registry host", name.host)))?;
        if !url
            .host()
            .is_some_and(|h| crate::registry::auth::is_loopback(&h))
        {
            return Err(Failure::invalid(format!(
                "--insecure (plain http) is only for registries on loopback, not {}",
                name.host
            ))
            .into());
        }
        url
    } else {
        url::Url::parse(&format!("https://{}", name.host))?
    };
    if let Some((_account, region)) = name.ecr() {
        let mut sdk = crate::aws::sts::base_config(&region).await;
        if let Some(arn) = role {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("ferry-copy")
                .configure(&sdk)
                .build()
                .await;
            sdk = sdk
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        return crate::registry::ecr::ecr_client(&sdk, &name.host)
            .await
            .with_context(|| format!("ECR credentials for {}", name.host));
    }
    let env = |k: &str| {
        std::env::var(format!("{prefix}{k}"))
            .or_else(|_| std::env::var(k))
            .ok()
            .filter(|v| !v.is_empty())
    };
    let creds = match (env("REGISTRY_USER"), env("REGISTRY_PASSWORD")) {
        (Some(u), Some(p)) => Credentials::Basic {
            username: u,
            password: crate::secret::Secret::new(p),
        },
        _ => crate::registry::auth::docker_config_credentials(&name.host)
            .unwrap_or(Credentials::Anonymous),
    };
    RegistryClient::new(base, creds)
}
