//! Registry credentials and where they may go.
//!
//! - [`Credentials`]: anonymous or Basic; the ECR token is Basic `AWS:<token>`.
//! - [`decode_basic`]: the one decoder of base64 `user:password` (ECR tokens, docker config).
//! - [`EcrHost`]: the exact ECR registry host grammar; nothing looser gets an ECR token.
//! - [`origin_allows_credentials`] / [`realm_may_receive_basic`] / [`redirect_allowed`]: a
//!   credential is bound to the scheme, host and port it was issued for. It never follows an
//!   upload `Location` or a redirect to another origin, Basic credentials reach a token realm
//!   only over https on the registry's own host or a sibling under the same parent domain,
//!   plain http is for loopback only, and https never steps down to http.
//! - [`ecr_client`]: a registry client for an ECR host with a `GetAuthorizationToken` token
//!   that refreshes itself after a 401.

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use base64::Engine as _;

use crate::secret::Secret;

/// How to authenticate to a registry.
#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: Secret },
}

/// Decodes base64 `user:password` (an ECR authorization token, a docker config `auth`).
pub fn decode_basic(encoded: &str) -> Result<(String, Secret)> {
    if encoded.len() > 64 * 1024 {
        bail!("the credential is over 64 KiB");
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| anyhow!("the credential is not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("the credential is not UTF-8"))?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("the credential is not user:password"))?;
    if user.is_empty() {
        bail!("the credential has an empty user name");
    }
    Ok((user.to_string(), Secret::new(pass)))
}

/// An ECR registry host: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`, or the
/// dual-stack `<account>.dkr-ecr[-fips].<region>.on.aws` /
/// `<account>.dkr-ecr.<region>.on.amazonwebservices.com.cn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
    pub fips: bool,
    pub dual_stack: bool,
}

impl EcrHost {
    /// Parses a host name (no port, no path, lowercase): exactly the grammar above.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let labels: Vec<&str> = host.split('.').collect();
        let (account, region, fips, dual_stack, china) = match labels.as_slice() {
            [a, "dkr", svc @ ("ecr" | "ecr-fips"), r, "amazonaws", "com"] => {
                (*a, *r, *svc == "ecr-fips", false, false)
            }
            [a, "dkr", svc @ ("ecr" | "ecr-fips"), r, "amazonaws", "com", "cn"] => {
                (*a, *r, *svc == "ecr-fips", false, true)
            }
            [a, svc @ ("dkr-ecr" | "dkr-ecr-fips"), r, "on", "aws"] => {
                (*a, *r, *svc == "dkr-ecr-fips", true, false)
            }
            [a, "dkr-ecr", r, "on", "amazonwebservices", "com", "cn"] => {
                (*a, *r, false, true, true)
            }
            _ => return None,
        };
        (is_account_id(account) && is_region(region) && region.starts_with("cn-") == china).then(
            || EcrHost {
                account: account.to_string(),
                region: region.to_string(),
                fips,
                dual_stack,
            },
        )
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `xx-name[-name]-N`, lowercase: `us-east-1`, `us-gov-west-1`, `cn-north-1`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `host` (no port) is a loopback address or `localhost`.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Whether a registry may be reached at `base`: https anywhere, plain http on loopback only.
pub fn check_base(base: &url::Url) -> Result<()> {
    match (base.scheme(), base.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(h)) if is_loopback(&h) => Ok(()),
        ("http", Some(_)) => bail!(
            "{}: plain http is only for registries on loopback",
            crate::redact::url(base)
        ),
        _ => bail!(
            "{}: a registry is reached over https (or http on loopback)",
            crate::redact::url(base)
        ),
    }
}

/// Whether credentials issued for `registry` may be sent with a request to `target`:
/// only to the very same origin (scheme, host and port).
pub fn origin_allows_credentials(registry: &url::Url, target: &url::Url) -> bool {
    registry.origin() == target.origin()
}

/// Whether a request from `from` may go on to `to` (a redirect, an upload `Location`, a
/// pagination link): never from https down to http, and only to http(s).
pub fn redirect_allowed(from: &url::Url, to: &url::Url) -> Result<(), String> {
    match (from.scheme(), to.scheme()) {
        ("https", "http") => Err(format!(
            "refusing to step down from https to plain http ({})",
            crate::redact::url(to)
        )),
        (_, "http" | "https") => Ok(()),
        (_, other) => Err(format!(
            "refusing a {other}: URL ({})",
            crate::redact::url(to)
        )),
    }
}

/// Whether a token `realm` named by `registry`'s Bearer challenge may receive the registry's
/// Basic credentials: over https (http only when the registry itself is a loopback http
/// registry and the realm is on the same host), on the registry's host or a host under the
/// same parent domain (`auth.docker.io` for `registry-1.docker.io`).
pub fn realm_may_receive_basic(registry: &url::Url, realm: &url::Url) -> Result<(), String> {
    let (Some(reg_host), Some(realm_host)) = (registry.host(), realm.host()) else {
        return Err("the realm has no host".into());
    };
    let same_host = reg_host
        .to_string()
        .eq_ignore_ascii_case(&realm_host.to_string());
    match realm.scheme() {
        "https" => {}
        "http" if registry.scheme() == "http" && is_loopback(&reg_host) && same_host => {}
        s => {
            return Err(format!(
                "the token realm {} is {s}, not https",
                crate::redact::url(realm)
            ))
        }
    }
    if same_host {
        return Ok(());
    }
    let (url::Host::Domain(reg), url::Host::Domain(rlm)) = (reg_host, realm_host) else {
        return Err(format!(
            "the token realm {} is on another host than the registry",
            crate::redact::url(realm)
        ));
    };
    let (reg, rlm) = (reg.to_ascii_lowercase(), rlm.to_ascii_lowercase());
    let parent = reg.split_once('.').map(|(_, p)| p).unwrap_or_default();
    // The parent must itself be a registrable-looking domain (two labels at least), so
    // `registry.io` does not vouch for every `*.io`.
    let sibling = parent.contains('.')
        && rlm
            .strip_suffix(parent)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1);
    if sibling {
        Ok(())
    } else {
        Err(format!(
            "the token realm {} is not on the registry's host {reg} or under its parent domain",
            crate::redact::url(realm)
        ))
    }
}

/// One authentication challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` value (RFC 7235 auth-params, quoted
/// strings with escapes). `None` for anything malformed or over 8 KiB.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    if header.len() > 8 * 1024 {
        return None;
    }
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c == ',' || c.is_whitespace() {
                return None;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.push((key.to_ascii_lowercase(), value));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(Challenge::Bearer {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// A token service's answer, at most.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Asks the token `realm` of `registry`'s Bearer challenge (`(realm, service, scope)`) for a
/// token. The registry's Basic credentials go along only where [`realm_may_receive_basic`]
/// allows; anywhere else the realm is asked for an anonymous token.
pub(super) async fn fetch_token(
    http: &reqwest::Client,
    registry: &url::Url,
    credentials: &Credentials,
    (realm, service, scope): (&str, Option<&str>, Option<&str>),
    deadline: std::time::Duration,
) -> Result<Secret> {
    use crate::redact;
    let mut url = url::Url::parse(realm)
        .map_err(|_| anyhow!("the token realm {} is not a URL", redact::url_str(realm)))?;
    redirect_allowed(registry, &url).map_err(|e| anyhow!("token realm: {e}"))?;
    for (k, v) in [("service", service), ("scope", scope)] {
        if let Some(v) = v {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    let mut rb = http.get(url.clone()).timeout(deadline);
    match realm_may_receive_basic(registry, &url) {
        Ok(()) => {
            if let Credentials::Basic { username, password } = credentials {
                rb = rb.basic_auth(username, Some(password.expose()));
            }
        }
        Err(why) => tracing::warn!(
            "{}: {why}; asking it for an anonymous token, without credentials",
            redact::url(registry)
        ),
    }
    let resp = rb.send().await.map_err(|e| {
        anyhow!(
            "token service {}: {}",
            redact::url(&url),
            redact::reqwest_error(&e)
        )
    })?;
    if !resp.status().is_success() {
        bail!(
            "token service {} answered {}: credentials rejected",
            redact::url(&url),
            resp.status()
        );
    }
    let body = super::body::read_limited(resp, MAX_TOKEN_BODY)
        .await
        .with_context(|| format!("reading the answer of {}", redact::url(&url)))?;
    #[derive(serde::Deserialize)]
    struct Token {
        token: Option<String>,
        access_token: Option<String>,
    }
    let t: Token = serde_json::from_slice(&body)
        .map_err(|_| anyhow!("the token service's answer is not a token"))?;
    t.token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| anyhow!("the token service returned no token"))
}

/// `auths.<host>.auth` from the docker config file (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`), when there is one.
pub fn docker_config_credentials(host: &str) -> Option<Credentials> {
    let dir = std::env::var("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .ok()?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auth = json.get("auths")?.get(host)?.get("auth")?.as_str()?;
    let (username, password) = decode_basic(auth).ok()?;
    Some(Credentials::Basic { username, password })
}

/// Basic credentials for the ECR registry `host` from `GetAuthorizationToken` with `sdk`'s
/// identity (in the registry's region, for the registry's account).
pub(super) async fn ecr_credentials(sdk: &SdkConfig, host: &EcrHost) -> Result<Credentials> {
    let token = crate::aws::ecr::authorization(sdk, &host.account, &host.region).await?;
    let (username, password) = decode_basic(token.token.expose())
        .context("ecr:GetAuthorizationToken returned an unusable token")?;
    Ok(Credentials::Basic { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn ecr_hosts_exactly() {
        let h = EcrHost::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (h.account.as_str(), h.region.as_str()),
            ("123456789012", "us-east-1")
        );
        assert!(!h.fips && !h.dual_stack);
        assert!(
            EcrHost::parse("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
                .unwrap()
                .fips
        );
        assert!(EcrHost::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        let d = EcrHost::parse("123456789012.dkr-ecr.eu-west-1.on.aws").unwrap();
        assert!(d.dual_stack && d.region == "eu-west-1");
        assert!(
            EcrHost::parse("123456789012.dkr-ecr-fips.us-east-2.on.aws")
                .unwrap()
                .fips
        );
        assert!(
            EcrHost::parse("123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn")
                .is_some()
        );
        for bad in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.attacker.test",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.",
            "123456789012.dkr.ecr.us-east-1.amazonaws.co",
            "123456789012.dkr.ecr.us-east-1.evil-amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
            "attacker.test/123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "x.123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east.amazonaws.com",
            "123456789012.dkr.ecr.US-EAST-1.amazonaws.com",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
            "123456789012.dkr.ecs.us-east-1.amazonaws.com",
            "123456789012.dkr-ecr.us-east-1.on.aws.attacker.test",
            "123456789012.dkr-ecr-fips.cn-north-1.on.amazonwebservices.com.cn",
            "amazonaws.com",
            "",
        ] {
            assert_eq!(EcrHost::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_basic_decoder() {
        let (user, pass) = decode_basic("QVdTOnNlY3JldDp3aXRoOmNvbG9ucw==").unwrap();
        assert_eq!(
            (user.as_str(), pass.expose()),
            ("AWS", "secret:with:colons")
        );
        for bad in ["!!", "bm9jb2xvbg==", "OnBhc3M=", "/w=="] {
            assert!(decode_basic(bad).is_err(), "{bad}");
        }
        let err = format!("{:#}", decode_basic("c2VjcmV0").unwrap_err());
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn credentials_stay_on_their_origin() {
        let reg = u("https://r.example");
        assert!(origin_allows_credentials(
            &reg,
            &u("https://r.example/v2/x?y")
        ));
        assert!(origin_allows_credentials(
            &reg,
            &u("https://r.example:443/v2/")
        ));
        for other in [
            "http://r.example/v2/",
            "https://r.example:444/v2/",
            "https://s.example/v2/",
            "https://r.example.attacker.test/v2/",
        ] {
            assert!(!origin_allows_credentials(&reg, &u(other)), "{other}");
        }
        assert!(redirect_allowed(&reg, &u("http://r.example/x")).is_err());
        assert!(redirect_allowed(&reg, &u("https://s3.example/x")).is_ok());
        assert!(redirect_allowed(&u("http://127.0.0.1:1"), &u("https://x.example")).is_ok());
        assert!(redirect_allowed(&reg, &u("file:///etc/passwd")).is_err());
    }

    #[test]
    fn realms_that_may_receive_basic() {
        let hub = u("https://registry-1.docker.io");
        assert!(realm_may_receive_basic(&hub, &u("https://auth.docker.io/token")).is_ok());
        assert!(realm_may_receive_basic(&hub, &u("https://registry-1.docker.io/token")).is_ok());
        for bad in [
            "http://auth.docker.io/token",
            "https://auth.attacker.test/token",
            "https://docker.io.attacker.test/token",
            "https://evildocker.io/token",
            "https://127.0.0.1/token",
        ] {
            assert!(realm_may_receive_basic(&hub, &u(bad)).is_err(), "{bad}");
        }
        // A two-label registry host does not vouch for its whole top-level domain.
        assert!(realm_may_receive_basic(&u("https://registry.io"), &u("https://x.io/t")).is_err());
        let local = u("http://127.0.0.1:5000");
        assert!(realm_may_receive_basic(&local, &u("http://127.0.0.1:5001/token")).is_ok());
        assert!(realm_may_receive_basic(&local, &u("http://127.0.0.2:5001/token")).is_err());
        assert!(
            realm_may_receive_basic(&u("https://r.example"), &u("http://r.example/token")).is_err()
        );
    }

    #[test]
    fn plain_http_is_for_loopback() {
        assert!(check_base(&u("http://127.0.0.1:5000")).is_ok());
        assert!(check_base(&u("http://[::1]:5000")).is_ok());
        assert!(check_base(&u("http://localhost:5000")).is_ok());
        assert!(check_base(&u("https://r.example")).is_ok());
        assert!(check_base(&u("http://r.example")).is_err());
        assert!(check_base(&u("http://10.0.0.1")).is_err());
        assert!(check_base(&u("ftp://127.0.0.1")).is_err());
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer Realm="https://a/t\"x", service=s"#),
            Some(Challenge::Bearer {
                realm: "https://a/t\"x".into(),
                service: Some("s".into()),
                scope: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        for bad in [
            "",
            "Bearer",
            r#"Bearer service="x""#,
            r#"Bearer realm="unterminated"#,
            r#"Bearer realm"#,
            r#"Bearer =x"#,
            r#"Bearer realm="""#,
            "Negotiate abc",
        ] {
            assert_eq!(parse_challenge(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,120}") {
            let _ = parse_challenge(&s);
            let _ = EcrHost::parse(&s);
            let _ = decode_basic(&s);
        }
        #[test]
        fn challenge_shaped_input_never_panics(s in "(Bearer|Basic) [a-z=\",\\\\ ]{0,60}") {
            let _ = parse_challenge(&s);
        }
    }
}
