//! The local world for integration tests: a moto server (shared, started by `scripts/world`),
//! real registries (one `docker-registry` per test and account, started here), and helpers
//! to run the `ferry` binary as a user would.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

/// The moto endpoint; a missing world is an error, never a skip.
pub fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the tests with scripts/test (or `scripts/world up` and source its env file)")
    })
}

pub fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

/// A random 12-digit account id: moto keeps each account's state apart, so tests can run in parallel.
pub fn random_account() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}{:011}",
        rng.gen_range(1..10),
        rng.gen_range(0..100_000_000_000u64)
    )
}

/// A unique lowercase name, for repositories, clusters, services.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::thread_rng().gen::<u32>())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port}");
}

/// A real CNCF distribution registry (Debian `docker-registry`) with htpasswd auth for
/// `AWS:<account>-auth-token`, the password moto's GetAuthorizationToken hands out.
pub struct Registry {
    /// Where clients talk to it (the referrers front when there is one).
    pub port: u16,
    pub account: String,
    pub user: String,
    pub password: String,
    /// The region of its ECR host name.
    pub region: String,
    child: Child,
    /// tests/referrers_proxy in front of the registry: the referrers API, as ECR serves it.
    front: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry that accepts the ECR credentials of `account`.
    pub fn for_account(account: &str) -> Registry {
        Self::start(account, "AWS", &format!("{account}-auth-token"))
    }

    /// A registry for `account`'s ECR in another `region` (a second region's target).
    pub fn for_account_in(account: &str, region: &str) -> Registry {
        let mut r = Self::for_account(account);
        r.region = region.to_string();
        r
    }

    /// A registry for `account` that serves the OCI referrers API, as ECR does: the real
    /// registry behind tests/referrers_proxy (docker-registry 2.8 has no referrers API).
    pub fn with_referrers(account: &str) -> Registry {
        let mut r = Self::for_account(account);
        let (front, endpoint) = announced(
            Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/referrers_proxy/proxy.py"))
                .args([
                    "--upstream",
                    &format!("http://127.0.0.1:{}", r.port),
                    "--port",
                    "0",
                ])
                .arg("--state")
                .arg(r._dir.path().join("referrers.json")),
            "REFERRERS_PROXY_ENDPOINT",
            "tests/referrers_proxy/proxy.py",
        );
        r.port = endpoint
            .strip_prefix("http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the referrers proxy listens at {endpoint}"));
        r.front = Some(front);
        r
    }

    /// A registry with arbitrary basic-auth credentials.
    pub fn start(account: &str, user: &str, password: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("htpasswd (apache2-utils) is missing: run scripts/setup");
        assert!(out.status.success(), "htpasswd failed");
        std::fs::write(&htpasswd, &out.stdout).unwrap();
        let port = free_port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {data}}}\n  delete: {{enabled: true}}\n  maintenance: {{uploadpurging: {{enabled: false}}}}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd: {{realm: ferry-test, path: {htpasswd}}}\n",
                data = dir.path().join("data").display(),
                htpasswd = htpasswd.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/bin")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is missing: run scripts/setup");
        wait_for_port(port, "docker-registry");
        Registry {
            port,
            account: account.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            region: region(),
            child,
            front: None,
            _dir: dir,
        }
    }

    /// Where the registry keeps its blobs (to watch an upload land).
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn creds(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }

    /// The ECR host name of this registry's account.
    pub fn ecr_host(&self) -> String {
        format!("{}.dkr.ecr.{}.amazonaws.com", self.account, self.region)
    }

    /// `FERRY_REGISTRY_ENDPOINTS` entry mapping the ECR host here.
    pub fn endpoint_entry(&self) -> String {
        format!("{}={}", self.ecr_host(), self.url())
    }

    /// Pushes a synthetic image (tests/fixtures/image.py); returns its digest.
    pub fn push_image(&self, repo: &str, tag: &str, extra: &[&str]) -> String {
        self.fixture("image.py", repo, tag, extra)
    }

    /// Runs `tests/fixtures/<script> <registry> <repo> <reference> --auth <creds> <extra…>`
    /// against this registry; its stdout, trimmed.
    pub fn fixture(&self, script: &str, repo: &str, reference: &str, extra: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(fixture(script))
            .args([&self.addr(), repo, reference, "--auth", &self.creds()])
            .args(extra)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// ferry's records of `digest`, read back by the ORAS Python client (tests/fixtures/oras_records.py):
    /// `(path, records)` where path is "api" (referrers API) or "fallback" (the sha256-<hex> tag).
    pub fn oras_records(&self, repo: &str, digest: &str) -> (String, Vec<serde_json::Value>) {
        let out = Command::new("python3")
            .arg(fixture("oras_records.py"))
            .args([&self.addr(), repo, digest, "--auth", &self.creds()])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "oras_records.py failed (run scripts/setup for the oras package): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["path"].as_str().unwrap().to_string(),
            v["records"].as_array().unwrap().clone(),
        )
    }

    /// Deletes `repo:tag`'s manifest, as an ECR lifecycle rule expiring it would.
    pub fn expire(&self, repo: &str, tag: &str) {
        let out = Command::new("skopeo")
            .args(["delete", "--tls-verify=false", "--creds", &self.creds()])
            .arg(format!("docker://{}/{repo}:{tag}", self.addr()))
            .output()
            .expect("skopeo is missing: run scripts/setup");
        assert!(
            out.status.success(),
            "skopeo delete {repo}:{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The digest of `repo:tag` as skopeo (a tool we did not write) computes it.
    pub fn skopeo_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let out = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &self.creds(),
            ])
            .arg(format!("docker://{}/{repo}:{tag}", self.addr()))
            .output()
            .expect("skopeo is missing: run scripts/setup");
        if !out.status.success() {
            return None;
        }
        use sha2::Digest;
        Some(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&out.stdout))
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(f) = self.front.as_mut() {
            let _ = f.kill();
            let _ = f.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a helper process that announces itself on its first stdout line (`KEY=value`)
/// and returns it with the value after `key=`; panics naming `what` if it says otherwise.
pub fn announced(cmd: &mut Command, key: &str, what: &str) -> (Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{what} said {line:?}, not {key}=…"))
        .to_string();
    (child, value)
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `ferry` with the world's environment plus `env`, ready to run.
pub fn ferry_command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env_remove("GITHUB_EVENT_PATH")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", "ferry-test")
        .env("AWS_SECRET_ACCESS_KEY", "ferry-test")
        .env("AWS_REGION", region())
        .env("AWS_MAX_ATTEMPTS", "1")
        // The overlap guard's settle window: short in tests (the simultaneous-runs test sets its own).
        .env("FERRY_CLAIM_SETTLE_MS", "200")
        .env_remove("GITHUB_RUN_ATTEMPT")
        // A CI runner's own run (GitHub Actions sets these for every step): a test that needs
        // them sets its own.
        .env_remove("GITHUB_RUN_ID")
        .env_remove("GITHUB_REF")
        .env_remove("GITHUB_EVENT_NAME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The simulator that plays a test's ECS also plays its Application Auto Scaling.
    let given = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    if let (Some(ecs), None) = (
        given("AWS_ENDPOINT_URL_ECS"),
        given("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"),
    ) {
        cmd.env("AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING", ecs);
    }
    cmd
}

/// Runs `ferry` with the world's environment plus `env`.
pub fn ferry(args: &[&str], env: &[(&str, String)]) -> Output {
    ferry_command(args, env).output().expect("running ferry")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, printing both streams when it differs.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Parameters of a staging + production pair of environment files.
pub struct EnvSpec {
    pub staging_account: String,
    pub prod_account: String,
    pub repo: String,
    pub cluster: String,
    pub service: String,
    pub container: String,
    pub staging_smoke: Option<String>,
    pub prod_smoke: Option<String>,
    /// `promote.soak_minutes` of production.
    pub soak_minutes: Option<u64>,
    /// TOML appended to staging's file (e.g. its `[records]` signing key).
    pub staging_extra: String,
    /// TOML appended to production's file (e.g. its `[records]` trusted keys).
    pub prod_extra: String,
}

impl EnvSpec {
    pub fn new() -> Self {
        EnvSpec {
            staging_account: random_account(),
            prod_account: random_account(),
            repo: unique("app"),
            cluster: unique("cluster"),
            service: "web".into(),
            container: "web".into(),
            staging_smoke: None,
            prod_smoke: None,
            soak_minutes: None,
            staging_extra: String::new(),
            prod_extra: String::new(),
        }
    }

    /// Writes `staging.toml` and `production.toml` into a new directory.
    pub fn write(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        self.write_to(dir.path());
        dir
    }

    /// Writes (or rewrites) `staging.toml` and `production.toml` in `dir`.
    pub fn write_to(&self, dir: &Path) {
        let region = region();
        let smoke = |url: &Option<String>| {
            url.as_ref()
                .map(|u| {
                    format!("[[smoke]]\nurl = \"{u}\"\nversion_field = \"version\"\ndeadline_seconds = 20\ntimeout_seconds = 2\n")
                })
                .unwrap_or_default()
        };
        let staging = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"prerelease\"\n[image]\nrepository = \"{repo}\"\n[[services]]\ncluster = \"{c}-staging\"\nservice = \"{s}\"\ncontainer = \"{k}\"\n{smoke}",
            a = self.staging_account,
            repo = self.repo,
            c = self.cluster,
            s = self.service,
            k = self.container,
            smoke = smoke(&self.staging_smoke)
        ) + &self.staging_extra;
        let production = format!(
            "account_id = \"{a}\"\nregion = \"{region}\"\n[role]\narn = \"arn:aws:iam::{a}:role/ferry-deploy\"\n[release]\nmatch = \"final\"\n[promote]\nfrom = \"staging\"\n{soak}[image]\nrepository = \"{repo}\"\n[[services]]\ncluster = \"{c}-production\"\nservice = \"{s}\"\ncontainer = \"{k}\"\n{smoke}",
            a = self.prod_account,
            repo = self.repo,
            c = self.cluster,
            s = self.service,
            k = self.container,
            smoke = smoke(&self.prod_smoke),
            soak = self
                .soak_minutes
                .map(|m| format!("soak_minutes = {m}\n"))
                .unwrap_or_default()
        ) + &self.prod_extra;
        std::fs::write(dir.join("staging.toml"), staging).unwrap();
        std::fs::write(dir.join("production.toml"), production).unwrap();
    }
}

/// The awsvpc network every test service uses (the simulator only checks its shape).
pub fn test_network() -> aws_sdk_ecs::types::NetworkConfiguration {
    use aws_sdk_ecs::types::{AwsVpcConfiguration, NetworkConfiguration};
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets("subnet-1")
                .security_groups("sg-1")
                .build()
                .unwrap(),
        )
        .build()
}

/// The ECS rollout simulator (tests/ecs_sim), one per test.
pub struct EcsSim {
    pub endpoint: String,
    child: Child,
}

impl EcsSim {
    pub fn start() -> EcsSim {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ecs_sim/ecs_sim.py"))
            .args(["--port", "0", "--region", &region()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 and tests/ecs_sim/ecs_sim.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("ECS_SIM_ENDPOINT=")
            .unwrap_or_else(|| panic!("the ECS simulator did not start: {line:?}"))
            .to_string();
        EcsSim { endpoint, child }
    }

    /// An ECS client pointed at the simulator (as ferry's would be through AWS_ENDPOINT_URL_ECS).
    pub fn client(&self) -> aws_sdk_ecs::Client {
        self.client_in(&region())
    }

    /// An ECS client for another region: the simulator keeps each region apart, as ECS does.
    pub fn client_in(&self, region: &str) -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    /// POST to the simulator's control API (`/_sim/...`).
    pub async fn control(&self, path: &str, body: serde_json::Value) {
        self.post(path, body).await;
    }

    /// POST to the control API and return its answer.
    pub async fn control_answer(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.post(path, body).await.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", self.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}{path}", self.endpoint))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Declares how an image behaves when it runs (see tests/ecs_sim/README.md).
    pub async fn image(&self, image: &str, version: &str, behavior: &str) {
        self.control(
            "/_sim/images",
            serde_json::json!({"image": image, "version": version, "behavior": behavior}),
        )
        .await;
    }

    pub fn health_url(&self, cluster: &str, service: &str) -> String {
        format!("{}/app/{cluster}/{service}/health", self.endpoint)
    }

    /// The app of a service in another region (`/app/@<region>/…`).
    pub fn health_url_in(&self, region: &str, cluster: &str, service: &str) -> String {
        format!("{}/app/@{region}/{cluster}/{service}/health", self.endpoint)
    }

    /// A cluster and a service (circuit breaker with rollback) running `image`, desired 2.
    pub async fn service(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
        image: &str,
    ) -> String {
        self.service_with(&region(), cluster, service, (container, image), None, true)
            .await
    }

    /// Another service (same shape as [`EcsSim::service`]) in a cluster that already exists.
    pub async fn service_in_existing_cluster(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
        image: &str,
    ) -> String {
        self.service_with(&region(), cluster, service, (container, image), None, false)
            .await
    }

    /// [`EcsSim::service`] in `region` (a target of another region).
    pub async fn service_in(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
        container: &str,
        image: &str,
    ) -> String {
        self.service_with(region, cluster, service, (container, image), None, true)
            .await
    }

    /// [`EcsSim::service`] whose task definition also runs a non-essential `sidecar`
    /// `(container, image)` that no release names.
    pub async fn service_with_sidecar(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
        image: &str,
        sidecar: (&str, &str),
    ) -> String {
        self.service_with(
            &region(),
            cluster,
            service,
            (container, image),
            Some(sidecar),
            true,
        )
        .await
    }

    async fn service_with(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
        (container, image): (&str, &str),
        sidecar: Option<(&str, &str)>,
        new_cluster: bool,
    ) -> String {
        use aws_sdk_ecs::types::*;
        let ecs = self.client_in(region);
        if new_cluster {
            ecs.create_cluster()
                .cluster_name(cluster)
                .send()
                .await
                .unwrap();
        }
        let mut containers = vec![ContainerDefinition::builder()
            .name(container)
            .image(image)
            .essential(true)
            .environment(KeyValuePair::builder().name("MODE").value("test").build())
            .build()];
        if let Some((name, side)) = sidecar {
            containers.push(
                ContainerDefinition::builder()
                    .name(name)
                    .image(side)
                    .essential(false)
                    .build(),
            );
        }
        let td = ecs
            .register_task_definition()
            .family(format!("{cluster}-{service}"))
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .execution_role_arn("arn:aws:iam::123456789012:role/exec")
            .set_container_definitions(Some(containers))
            .tags(Tag::builder().key("team").value("shop").build())
            .send()
            .await
            .unwrap();
        let arn = td
            .task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_string();
        ecs.create_service()
            .cluster(cluster)
            .service_name(service)
            .task_definition(&arn)
            .desired_count(2)
            .launch_type(LaunchType::Fargate)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .maximum_percent(200)
                    .minimum_healthy_percent(100)
                    .deployment_circuit_breaker(
                        DeploymentCircuitBreaker::builder()
                            .enable(true)
                            .rollback(true)
                            .build(),
                    )
                    .build(),
            )
            .network_configuration(test_network())
            .send()
            .await
            .unwrap();
        self.wait_idle_in(region, cluster, service).await;
        arn
    }

    /// Waits until the service has one COMPLETED deployment.
    pub async fn wait_idle(&self, cluster: &str, service: &str) -> aws_sdk_ecs::types::Service {
        self.wait_idle_in(&region(), cluster, service).await
    }

    /// [`EcsSim::wait_idle`] in `region`.
    pub async fn wait_idle_in(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
    ) -> aws_sdk_ecs::types::Service {
        let ecs = self.client_in(region);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = ecs
                .describe_services()
                .cluster(cluster)
                .services(service)
                .send()
                .await
                .unwrap();
            let svc = out.services()[0].clone();
            let d = svc.deployments();
            if d.len() == 1
                && d[0].rollout_state()
                    == Some(&aws_sdk_ecs::types::DeploymentRolloutState::Completed)
            {
                return svc;
            }
            assert!(
                Instant::now() < deadline,
                "service {cluster}/{service} did not settle: {svc:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn describe(&self, cluster: &str, service: &str) -> aws_sdk_ecs::types::Service {
        self.describe_in(&region(), cluster, service).await
    }

    /// [`EcsSim::describe`] in `region`.
    pub async fn describe_in(
        &self,
        region: &str,
        cluster: &str,
        service: &str,
    ) -> aws_sdk_ecs::types::Service {
        self.client_in(region)
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .unwrap()
            .services()[0]
            .clone()
    }

    pub async fn revisions(&self, family: &str) -> usize {
        self.revisions_in(&region(), family).await
    }

    /// [`EcsSim::revisions`] in `region`.
    pub async fn revisions_in(&self, region: &str, family: &str) -> usize {
        self.client_in(region)
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    }
}

impl Drop for EcsSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an ECR repository in `account` (moto), reached by assuming a role there as ferry does.
/// An SDK config for the world's moto with `account`'s `setup` role assumed (test set-up).
pub async fn setup_config(account: &str) -> aws_config::SdkConfig {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region()))
        .endpoint_url(moto_url())
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "ferry-test",
            "ferry-test",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let role =
        aws_config::sts::AssumeRoleProvider::builder(format!("arn:aws:iam::{account}:role/setup"))
            .session_name("test-setup")
            .configure(&base)
            .build()
            .await;
    base.into_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(role))
        .build()
}

pub async fn create_repository(account: &str, name: &str) {
    let conf = setup_config(account).await;
    aws_sdk_ecr::Client::new(&conf)
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap();
}

/// A misbehaving registry or proxy (tests/fixtures/fakeregistry.py): the registry on
/// 127.0.0.1:`port`, a foreign origin on 127.0.0.2 (its requests are logged as "foreign").
pub struct FakeRegistry {
    pub port: u16,
    log: tempfile::NamedTempFile,
    child: std::process::Child,
}

impl FakeRegistry {
    pub fn start(mode: &str, upstream: Option<&Registry>, seconds: f64) -> FakeRegistry {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(fixture("fakeregistry.py"))
            .arg(mode)
            .args(["--log", log.path().to_str().unwrap()])
            .args(["--seconds", &seconds.to_string()]);
        if let Some(r) = upstream {
            cmd.args(["--upstream", &r.port.to_string()]);
        }
        let (child, port) = announced(&mut cmd, "PORT", "tests/fixtures/fakeregistry.py");
        FakeRegistry {
            port: port.parse().unwrap(),
            log,
            child,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request it saw: listener ("registry" / "foreign"), method, path, auth, t.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ferry deploy` under way, its stderr collected.
pub struct Deploying {
    child: Child,
    reader: std::thread::JoinHandle<String>,
}

impl Deploying {
    /// Starts `cmd` (its stdout discarded) and returns once a line of its stderr is `ready`;
    /// panics after `within` (the rollout never started).
    pub fn until(mut cmd: Command, ready: impl Fn(&str) -> bool, within: Duration) -> Deploying {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let line = line.unwrap_or_default();
                let _ = tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if ready(&line) => break,
                Ok(_) => {}
                Err(_) => panic!("the rollout never started"),
            }
        }
        Deploying { child, reader }
    }

    /// Sends `sig`, waits for the end; returns the exit code and stderr.
    pub fn signal(mut self, sig: &str) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap().code();
        (code, self.reader.join().unwrap())
    }
}

impl Registry {
    /// The tags of `repo` that are ferry's claims (`ferry-claim_*`).
    pub async fn claim_tags(&self, repo: &str) -> Vec<String> {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/v2/{repo}/tags/list", self.url()))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .filter(|t| t.starts_with("ferry-claim_"))
            .map(str::to_string)
            .collect()
    }
}
