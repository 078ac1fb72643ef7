//! Parsing and validation of environment files.

use super::check::{is_region, parse_role_arn};
use super::images::is_repository_name;

use super::*;

const STAGING: &str = r#"
account_id = "111111111111"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::111111111111:role/ferry-deploy"
[release]
match = "prerelease"
[image]
repository = "shop/api"
[[services]]
cluster = "shop"
service = "api"
container = "api"
[[smoke]]
url = "https://staging.example.com/healthz"
version_field = "version"
"#;

const PRODUCTION: &str = r#"
account_id = "222222222222"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::222222222222:role/ferry-deploy"
external_id = "shop-prod"
[release]
match = "final"
[promote]
from = "staging"
[image]
repository = "shop/api"
[[services]]
cluster = "shop"
service = "api"
container = "api"
[[services]]
cluster = "shop"
service = "worker"
container = "worker"
"#;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in files {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    d
}

fn load_err(files: &[(&str, &str)]) -> String {
    let d = dir_with(files);
    let e = Environments::load(d.path()).unwrap_err();
    let f = crate::error::classify(&e).expect("config errors are classified");
    assert_eq!(f.kind, crate::error::FailureKind::Invalid);
    format!("{e:#}")
}

#[test]
fn loads_and_selects() {
    let d = dir_with(&[("staging.toml", STAGING), ("production.toml", PRODUCTION)]);
    let envs = Environments::load(d.path()).unwrap();
    let words = envs.prerelease_words();
    let rc = crate::tag::parse("v1.0.0-rc.1", &words).unwrap();
    let fin = crate::tag::parse("v1.0.0", &words).unwrap();
    assert_eq!(envs.select(&rc).unwrap().name, "staging");
    let prod = envs.select(&fin).unwrap();
    assert_eq!(prod.name, "production");
    assert_eq!(prod.file.services.len(), 2);
    assert_eq!(
        prod.registry_host(),
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
    );
    let staging = envs.get("staging").unwrap();
    assert_eq!(staging.file.smoke[0].expect_status, 200);
    assert_eq!(staging.file.smoke[0].deadline_seconds, 120);
    assert_eq!(staging.session_name(), "ferry-staging");
}

/// (name, replace this, with this, expected message fragment)
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "typo field",
        "account_id =",
        "acount_id =",
        "unknown field `acount_id`",
    ),
    (
        "short account",
        "\"111111111111\"\nregion",
        "\"11111\"\nregion",
        "field `account_id`",
    ),
    ("bad region", "eu-west-1", "europe", "field `region`"),
    (
        "role other account",
        "arn:aws:iam::111111111111:role",
        "arn:aws:iam::999999999999:role",
        "role is in account 999999999999",
    ),
    (
        "not a role",
        "arn:aws:iam::111111111111:role/ferry-deploy",
        "ferry-deploy",
        "not an IAM role ARN",
    ),
    (
        "bad match",
        "match = \"prerelease\"",
        "match = \"staging\"",
        "unknown variant `staging`",
    ),
    (
        "bad repo",
        "shop/api",
        "Shop/API",
        "field `image.repository`",
    ),
    (
        "bad word",
        "match = \"prerelease\"",
        "match = \"prerelease\"\nprerelease_words = [\"RC\"]",
        "prerelease_words",
    ),
    (
        "bad smoke url",
        "https://staging.example.com/healthz",
        "ftp://x",
        "field `smoke[0].url`",
    ),
    (
        "promote on staging",
        "[image]",
        "[promote]\nfrom = \"production\"\n[image]",
        "only final-release environments promote",
    ),
    (
        "short duration",
        "role/ferry-deploy\"",
        "role/ferry-deploy\"\nsession_duration_seconds = 60",
        "session_duration_seconds",
    ),
    (
        "no services",
        "[[services]]\ncluster = \"shop\"\nservice = \"api\"\ncontainer = \"api\"\n",
        "",
        "field `services`",
    ),
    (
        "bad test url",
        "version_field = \"version\"",
        "version_field = \"version\"\ntest_url = \"file:///x\"",
        "field `smoke[0].test_url`: scheme \"file\" is not http or https",
    ),
    (
        "smoke service without test_url",
        "version_field = \"version\"",
        "version_field = \"version\"\nservice = \"api\"",
        "field `smoke[0].service`: only with `test_url`",
    ),
    (
        "smoke service unknown",
        "version_field = \"version\"",
        "version_field = \"version\"\ntest_url = \"https://x/health\"\nservice = \"web\"",
        "field `smoke[0].service`: \"web\" is not one of this environment's [[services]]",
    ),
    (
        "codedeploy group without application",
        "container = \"api\"\n",
        "container = \"api\"\n[services.codedeploy]\ndeployment_group = \"api\"\n",
        "field `services[0].codedeploy`: name both `application` and `deployment_group`",
    ),
    (
        "codedeploy unknown hook",
        "container = \"api\"\n",
        "container = \"api\"\n[services.codedeploy]\nhooks = { Install = \"fn\" }\n",
        "field `services[0].codedeploy.hooks.Install`: not an ECS AppSpec hook",
    ),
    (
        "codedeploy typo",
        "container = \"api\"\n",
        "container = \"api\"\n[services.codedeploy]\napplication = \"shop\"\ngroup = \"api\"\n",
        "unknown field `group`",
    ),
    (
        "wrong type",
        "\"111111111111\"\nregion",
        "111111111111\nregion",
        "account_id",
    ),
];

#[test]
fn blue_green_fields_load() {
    let text = STAGING
        .replacen(
            "container = \"api\"\n",
            "container = \"api\"\n[services.codedeploy]\napplication = \"shop\"\ndeployment_group = \"api\"\nhooks = { AfterAllowTestTraffic = \"check-api\" }\n",
            1,
        )
        .replacen(
            "version_field = \"version\"",
            "version_field = \"version\"\ntest_url = \"https://staging.example.com:8443/healthz\"\nservice = \"shop/api\"",
            1,
        );
    let d = dir_with(&[("staging.toml", &text), ("production.toml", PRODUCTION)]);
    let envs = Environments::load(d.path()).unwrap();
    let staging = envs.get("staging").unwrap();
    let cd = staging.file.services[0].codedeploy.clone().unwrap();
    assert_eq!(cd.application.as_deref(), Some("shop"));
    assert_eq!(cd.deployment_group.as_deref(), Some("api"));
    assert_eq!(cd.hooks["AfterAllowTestTraffic"], "check-api");
    assert_eq!(
        staging.file.smoke[0].test_url.as_deref(),
        Some("https://staging.example.com:8443/healthz")
    );
    assert!(staging.file.smoke[0].tests_service(&staging.file.services[0]));
}

#[test]
fn broken_files_name_file_and_field() {
    for (name, from, to, want) in BROKEN {
        assert!(STAGING.contains(from), "{name}: fixture lacks {from:?}");
        let broken = STAGING.replacen(from, to, 1);
        let msg = load_err(&[("staging.toml", &broken), ("production.toml", PRODUCTION)]);
        assert!(msg.contains(want), "{name}: {msg}");
        assert!(msg.contains("staging.toml"), "{name}: no file in {msg}");
    }
}

#[test]
fn cross_file_problems() {
    let msg = load_err(&[
        ("staging.toml", STAGING),
        (
            "production.toml",
            &PRODUCTION.replace("from = \"staging\"", "from = \"stage\""),
        ),
    ]);
    assert!(msg.contains("no environment named \"stage\""), "{msg}");
    let msg = load_err(&[
        ("staging.toml", STAGING),
        ("qa.toml", STAGING),
        ("production.toml", PRODUCTION),
    ]);
    assert!(msg.contains("all accept pre-release word \"rc\""), "{msg}");
    let msg = load_err(&[
        ("staging.toml", STAGING),
        (
            "production.toml",
            &PRODUCTION.replace("[promote]\nfrom = \"staging\"\n", ""),
        ),
    ]);
    assert!(msg.contains("promote.from"), "{msg}");
}

#[test]
fn empty_or_missing_dir() {
    let d = tempfile::tempdir().unwrap();
    let e = Environments::load(d.path()).unwrap_err();
    assert!(format!("{e:#}").contains("no environment files"));
    let e = Environments::load(&d.path().join("nope")).unwrap_err();
    assert!(format!("{e:#}").contains("cannot read the environments directory"));
}

#[test]
fn no_matching_environment() {
    let d = dir_with(&[("staging.toml", STAGING)]);
    let envs = Environments::load(d.path()).unwrap();
    let fin = crate::tag::parse("v1.0.0", &envs.prerelease_words()).unwrap();
    let e = envs.select(&fin).unwrap_err();
    assert!(format!("{e:#}").contains("no environment"));
}

#[test]
fn name_checks() {
    assert!(is_repository_name("shop/api"));
    assert!(is_repository_name("a.b_c-d/e2"));
    assert!(!is_repository_name("shop//api"));
    assert!(!is_repository_name("shop/api-"));
    assert!(is_region("us-gov-west-1"));
    assert!(!is_region("us-east"));
    assert_eq!(
        parse_role_arn("arn:aws-cn:iam::123456789012:role/a/b"),
        Some("123456789012")
    );
    assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/a"), None);
}

#[test]
fn role_arn_partitions_are_exactly_the_real_ones() {
    for ok in ["aws", "aws-cn", "aws-us-gov"] {
        assert_eq!(
            parse_role_arn(&format!("arn:{ok}:iam::123456789012:role/deploy")),
            Some("123456789012"),
            "{ok}"
        );
    }
    for bad in ["aws-evil", "awsx", "", "AWS"] {
        assert_eq!(
            parse_role_arn(&format!("arn:{bad}:iam::123456789012:role/deploy")),
            None,
            "{bad}"
        );
    }
}

#[test]
fn variables_in_smoke_urls() {
    let env = |k: &str| (k == "SIM").then(|| "http://127.0.0.1:5413".to_string());
    for (input, want) in [
        ("${SIM}/app/health", Ok("http://127.0.0.1:5413/app/health")),
        ("https://x.example/$path", Ok("https://x.example/$path")),
        ("${NOPE}/x", Err("${NOPE}, which is not set")),
        ("${SIM/x", Err("without a closing")),
        ("${a-b}/x", Err("is not a variable name")),
    ] {
        match (super::expand_vars(input, env), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w, "{input}"),
            (Err(got), Err(w)) => assert!(got.contains(w), "{input}: {got}"),
            (got, w) => panic!("{input}: got {got:?}, want {w:?}"),
        }
    }
}

#[test]
fn an_unset_variable_is_one_problem_per_field() {
    let var = "FERRY_CONFIG_TEST_NEVER_SET_4F1B";
    assert!(std::env::var_os(var).is_none());
    let staging = STAGING
        .replace(
            "https://staging.example.com/healthz",
            &format!("${{{var}}}/healthz"),
        )
        .replace(
            "version_field = \"version\"",
            &format!("version_field = \"version\"\ntest_url = \"${{{var}}}/test\""),
        );
    let e = load_err(&[("staging.toml", &staging), ("production.toml", PRODUCTION)]);
    assert!(e.contains("2 problem(s)"), "{e}");
    for field in ["smoke[0].url", "smoke[0].test_url"] {
        let line = format!("field `{field}`:");
        assert_eq!(e.matches(&line).count(), 1, "{field}: {e}");
    }
    assert_eq!(e.matches("which is not set").count(), 2, "{e}");
    assert!(!e.contains("is not a URL"), "{e}");
}

/// A P-256 public key as one-line PEM.
fn pem() -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use base64::Engine as _;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap();
    format!(
        "-----BEGIN PUBLIC KEY----- {} -----END PUBLIC KEY-----",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    )
}

#[test]
fn records_keys_are_checked_and_a_promoting_environment_inherits_its_sources() {
    let key = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (a, b) = (pem(), pem());
    let signing = format!("{STAGING}[records]\nsigning_key = \"{key}\"\npublic_key = \"{a}\"\n");
    let d = dir_with(&[("staging.toml", &signing), ("production.toml", PRODUCTION)]);
    let envs = load(d.path()).unwrap();
    let prod = envs.get("production").unwrap();
    assert_eq!(envs.trusted_keys(prod), vec![a.clone()]);
    assert!(envs.unsigned_warning(prod).is_none());
    // Rotation: staging retires the old key; production inherits both.
    let rotated = format!("{STAGING}[records]\nsigning_key = \"{key}\"\npublic_key = \"{b}\"\nretired_keys = [\"{a}\"]\n");
    let d = dir_with(&[("staging.toml", &rotated), ("production.toml", PRODUCTION)]);
    let envs = load(d.path()).unwrap();
    assert_eq!(
        envs.trusted_keys(envs.get("production").unwrap()),
        vec![b.clone(), a.clone()]
    );
    // Or production lists both keys; they replace the inherited ones.
    let rotating = format!("{PRODUCTION}[records]\ntrusted_keys = [\"{a}\", \"{b}\"]\n");
    let d = dir_with(&[("staging.toml", &signing), ("production.toml", &rotating)]);
    let envs = load(d.path()).unwrap();
    assert_eq!(envs.trusted_keys(envs.get("production").unwrap()).len(), 2);
    // No key anywhere: the warning says what that allows.
    let d = dir_with(&[("staging.toml", STAGING), ("production.toml", PRODUCTION)]);
    let envs = load(d.path()).unwrap();
    let w = envs
        .unsigned_warning(envs.get("production").unwrap())
        .unwrap();
    assert!(
        w.contains("records are unsigned") && w.contains("promotes any image"),
        "{w}"
    );
    assert!(envs
        .unsigned_warning(envs.get("staging").unwrap())
        .is_none());

    // (name, staging's [records], production's [records], expected problem)
    let cases = [
        ("not a key", format!("signing_key = \"{key}\"\npublic_key = \"hello\""), String::new(), "staging.toml: field `records.public_key`: is not a PEM public key"),
        ("garbage between the lines", format!("signing_key = \"{key}\"\npublic_key = \"-----BEGIN PUBLIC KEY----- AAAA -----END PUBLIC KEY-----\""), String::new(), "is not an ECDSA P-256 public key"),
        ("no public key", format!("signing_key = \"{key}\""), String::new(), "field `records.public_key`: missing"),
        ("public key alone", format!("public_key = \"{a}\""), String::new(), "set without `records.signing_key`"),
        ("not a KMS key", format!("signing_key = \"my key\"\npublic_key = \"{a}\""), String::new(), "field `records.signing_key`: \"my key\" is not a KMS key ARN"),
        ("trusted keys without promote", format!("signing_key = \"{key}\"\npublic_key = \"{a}\"\ntrusted_keys = [\"{a}\"]"), String::new(), "only an environment with [promote]"),
        ("a bad trusted key", String::new(), "trusted_keys = [\"x\"]".to_string(), "production.toml: field `records.trusted_keys[0]`"),
        ("a bad retired key", format!("signing_key = \"{key}\"\npublic_key = \"{a}\"\nretired_keys = [\"x\"]"), String::new(), "field `records.retired_keys[0]`"),
        ("retired keys alone", format!("retired_keys = [\"{a}\"]"), String::new(), "field `records.retired_keys`: set without `records.public_key`"),
        ("a typo", String::new(), "trusted_key = []".to_string(), "unknown field `trusted_key`"),
        ("an unset variable", "signing_key = \"${FERRY_TEST_NO_SUCH_KEY}\"".to_string(), String::new(), "field `records.signing_key`: \"${FERRY_TEST_NO_SUCH_KEY}\" uses ${FERRY_TEST_NO_SUCH_KEY}, which is not set"),
    ];
    for (name, s, p, want) in cases {
        let s = format!("{STAGING}[records]\n{s}\n");
        let p = format!("{PRODUCTION}[records]\n{p}\n");
        let d = dir_with(&[("staging.toml", &s), ("production.toml", &p)]);
        let e = format!("{:#}", load(d.path()).unwrap_err());
        assert!(e.contains(want), "{name}: {e}");
    }
}
