//! The new task-definition revision: rendered from the live one, only the image and ferry's
//! tags change (`super::preview` shows that change for `ferry plan`).
//!
//! `DescribeTaskDefinition` returns fields `RegisterTaskDefinition` rejects, and tools that
//! copy the JSON with a block- or allow-list have dropped fields in the wild. So the typed
//! struct is mapped field by field, and `tests::every_field_is_accounted_for` fails when the
//! pinned SDK gains a field this mapping does not know.

use anyhow::{bail, Result};
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{Tag, TaskDefinition};
use serde::Serialize;

use crate::aws::ecs::{self, TAG_COMMIT, TAG_DIGEST, TAG_RELEASE, TAG_VERSION};

/// One changed field between the live revision and the rendered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field's path, e.g. `containerDefinitions[web].image`.
    pub field: String,
    /// The value now.
    pub from: Option<String>,
    /// The value after.
    pub to: Option<String>,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        write!(
            f,
            "{}: {} → {}",
            self.field,
            show(&self.from),
            show(&self.to)
        )
    }
}

/// What a service's new revision runs: for each container that runs an image of the release,
/// that image pinned by digest (`registry/repository@sha256:…`), the service's main container
/// first. Containers not named keep their image (sidecars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins(Vec<(String, String)>);

impl Pins {
    /// `(container, image)` pairs, the main container first.
    pub fn new(pins: Vec<(String, String)>) -> Pins {
        Pins(pins)
    }

    /// One container running one image.
    #[cfg(test)]
    pub fn one(container: &str, image: &str) -> Pins {
        Pins(vec![(container.to_string(), image.to_string())])
    }

    /// The main container's image.
    pub fn main(&self) -> &str {
        self.0.first().map_or("", |(_, i)| i.as_str())
    }

    /// `(container, image)` pairs, the main container first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(c, i)| (c.as_str(), i.as_str()))
    }

    /// Whether every pinned container of `td` already runs its image.
    pub fn runs(&self, td: &TaskDefinition) -> bool {
        self.iter()
            .all(|(c, i)| ecs::container_image(td, c) == Some(i))
    }
}

impl std::fmt::Display for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() == 1 {
            return f.write_str(self.main());
        }
        let parts: Vec<String> = self.iter().map(|(c, i)| format!("{c}: {i}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// The register request for a copy of `td` whose pinned containers run their images, with
/// `tags` (the revision's own tags, ferry's overriding). Returns the request and the field diff.
pub fn render(
    client: &aws_sdk_ecs::Client,
    td: &TaskDefinition,
    own_tags: &[Tag],
    pins: &Pins,
    ferry_tags: &[(&str, String)],
) -> Result<(RegisterTaskDefinitionFluentBuilder, Vec<FieldChange>)> {
    let family = td.family().unwrap_or_default();
    let mut containers = td.container_definitions().to_vec();
    let names: Vec<&str> = td
        .container_definitions()
        .iter()
        .filter_map(|c| c.name())
        .collect();
    let mut changes = Vec::new();
    for (n, (container, image)) in pins.iter().enumerate() {
        let Some(pos) = containers.iter().position(|c| c.name() == Some(container)) else {
            let field = if n == 0 { "container" } else { "containers" };
            bail!(
                "task definition {} has no container named {container:?} (it has: {}); fix `{field}` in the environment's [[services]]",
                td.task_definition_arn().unwrap_or(family),
                names.join(", ")
            );
        };
        let old_image = containers[pos].image().map(str::to_string);
        if old_image.as_deref() != Some(image) {
            changes.push(FieldChange {
                field: format!("containerDefinitions[{container}].image"),
                from: old_image,
                to: Some(image.to_string()),
            });
        }
        containers[pos].image = Some(image.to_string());
    }

    let mut tags: Vec<Tag> = own_tags.to_vec();
    for (k, v) in ferry_tags {
        match tags.iter_mut().find(|t| t.key() == Some(*k)) {
            Some(t) if t.value() == Some(v.as_str()) => {}
            Some(t) => {
                changes.push(FieldChange {
                    field: format!("tags[{k}]"),
                    from: t.value().map(str::to_string),
                    to: Some(v.clone()),
                });
                *t = Tag::builder().key(*k).value(v).build();
            }
            None => {
                changes.push(FieldChange {
                    field: format!("tags[{k}]"),
                    from: None,
                    to: Some(v.clone()),
                });
                tags.push(Tag::builder().key(*k).value(v).build());
            }
        }
    }

    // Field by field; keep in step with CARRIED in the tests below. Elastic Inference is
    // retired, but a revision that still names it must round-trip unchanged.
    #[allow(deprecated)]
    let req = client
        .register_task_definition()
        .set_family(td.family.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_inference_accelerators(td.inference_accelerators.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .set_enable_fault_injection(td.enable_fault_injection)
        .set_tags(if tags.is_empty() { None } else { Some(tags) });
    Ok((req, changes))
}

/// A revision of the family registered after `current` that is exactly what `wanted` would
/// register (a run killed between `RegisterTaskDefinition` and `UpdateService` leaves one):
/// reusing it keeps the family free of identical orphans. `None` when there is none, or on
/// any doubt (it is only an optimisation).
pub async fn find_orphan(
    client: &aws_sdk_ecs::Client,
    current: &TaskDefinition,
    pins: &Pins,
    ferry_tags: &[(&str, String)],
    wanted: &RegisterTaskDefinitionFluentBuilder,
) -> Option<String> {
    let family = current.family()?;
    let listed = client
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .sort(aws_sdk_ecs::types::SortOrder::Desc)
        .max_results(1)
        .send()
        .await
        .ok()?;
    let latest = listed.task_definition_arns().first()?;
    if Some(latest.as_str()) == current.task_definition_arn() {
        return None;
    }
    let (td, tags) = ecs::describe_task_definition(client, latest).await.ok()?;
    if td.family() != Some(family) || td.revision() <= current.revision() {
        return None;
    }
    let (again, changes) = render(client, &td, &tags, pins, ferry_tags).ok()?;
    (changes.is_empty() && same_request(again.as_input(), wanted.as_input()))
        .then(|| latest.clone())
}

/// Two register requests ask for the same revision (tags compared as a set).
fn same_request(
    a: &aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder,
    b: &aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder,
) -> bool {
    let sorted = |x: &aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionInputBuilder| {
        let mut tags = x.get_tags().clone().unwrap_or_default();
        tags.sort_by(|p, q| p.key().cmp(&q.key()));
        x.clone().set_tags(Some(tags))
    };
    sorted(a) == sorted(b)
}

/// The tags ferry puts on a revision for this release.
pub fn ferry_tags(
    tag: &str,
    version: &str,
    digest: &str,
    commit: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut t = vec![
        (TAG_RELEASE, tag.to_string()),
        (TAG_VERSION, version.to_string()),
        (TAG_DIGEST, digest.to_string()),
    ];
    if let Some(c) = commit {
        t.push((TAG_COMMIT, c.to_string()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ecs::{TAG_RELEASE, TAG_VERSION};
    use aws_sdk_ecs::types::*;

    /// Fields of `TaskDefinition` carried into the register request.
    const CARRIED: &[&str] = &[
        "family",
        "task_role_arn",
        "execution_role_arn",
        "network_mode",
        "container_definitions",
        "volumes",
        "placement_constraints",
        "requires_compatibilities",
        "cpu",
        "memory",
        "pid_mode",
        "ipc_mode",
        "proxy_configuration",
        "inference_accelerators",
        "ephemeral_storage",
        "runtime_platform",
        "enable_fault_injection",
    ];
    /// Fields that describe a registered revision and that RegisterTaskDefinition rejects.
    const READ_ONLY: &[&str] = &[
        "task_definition_arn",
        "revision",
        "status",
        "requires_attributes",
        "compatibilities",
        "registered_at",
        "deregistered_at",
        "delete_requested_at",
        "registered_by",
    ];

    /// Field names of a struct from its derived `Debug` (top level only).
    fn debug_fields(debug: &str) -> Vec<String> {
        let inner = &debug[debug.find('{').unwrap() + 1..debug.rfind('}').unwrap()];
        let mut depth = 0;
        let mut fields = Vec::new();
        let mut current = String::new();
        for ch in inner.chars() {
            match ch {
                '{' | '[' | '(' => depth += 1,
                '}' | ']' | ')' => depth -= 1,
                ',' if depth == 0 => {
                    fields.push(current.clone());
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(ch);
        }
        fields.push(current);
        fields
            .iter()
            .filter_map(|f| f.split(':').next().map(|n| n.trim().to_string()))
            .filter(|n| !n.is_empty())
            .collect()
    }

    #[test]
    fn every_field_is_accounted_for() {
        let described = debug_fields(&format!("{:?}", TaskDefinition::builder().build()));
        for f in &described {
            assert!(
                CARRIED.contains(&f.as_str()) || READ_ONLY.contains(&f.as_str()),
                "the pinned SDK's TaskDefinition has a field `{f}` that render() neither carries over nor knows to drop: map it"
            );
        }
        let register = debug_fields(&format!(
            "{:?}",
            aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionInput::builder(
            )
            .build()
            .unwrap()
        ));
        for f in &register {
            assert!(
                CARRIED.contains(&f.as_str()) || f == "tags",
                "RegisterTaskDefinition accepts `{f}`, which render() does not set"
            );
        }
        for f in CARRIED {
            assert!(
                described.contains(&f.to_string()),
                "CARRIED lists `{f}`, which TaskDefinition no longer has"
            );
        }
    }

    #[allow(deprecated)]
    fn full_task_definition() -> TaskDefinition {
        let c = |name: &str, image: &str| {
            ContainerDefinition::builder()
                .name(name)
                .image(image)
                .essential(true)
                .environment(KeyValuePair::builder().name("A").value("1").build())
                .build()
        };
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:111111111111:task-definition/web:7")
            .family("web")
            .task_role_arn("arn:aws:iam::111111111111:role/task")
            .execution_role_arn("arn:aws:iam::111111111111:role/exec")
            .network_mode(NetworkMode::Awsvpc)
            .container_definitions(c("web", "repo@sha256:old"))
            .container_definitions(c("sidecar", "envoy:1"))
            .volumes(Volume::builder().name("data").build())
            .placement_constraints(
                TaskDefinitionPlacementConstraint::builder()
                    .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:x == y")
                    .build(),
            )
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .pid_mode(PidMode::Task)
            .ipc_mode(IpcMode::None)
            .proxy_configuration(
                ProxyConfiguration::builder()
                    .container_name("sidecar")
                    .build()
                    .unwrap(),
            )
            .inference_accelerators(
                InferenceAccelerator::builder()
                    .device_name("d")
                    .device_type("t")
                    .build()
                    .unwrap(),
            )
            .ephemeral_storage(EphemeralStorage::builder().size_in_gib(30).build())
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .build(),
            )
            .enable_fault_injection(true)
            .revision(7)
            .status(TaskDefinitionStatus::Active)
            .requires_attributes(
                Attribute::builder()
                    .name("ecs.capability.x")
                    .build()
                    .unwrap(),
            )
            .compatibilities(Compatibility::Ec2)
            .registered_by("someone")
            .build()
    }

    fn client() -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("us-east-1"))
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    #[test]
    #[allow(deprecated)]
    fn render_changes_only_the_image_and_tags() {
        let td = full_task_definition();
        let own = vec![
            Tag::builder().key("team").value("shop").build(),
            Tag::builder().key(TAG_RELEASE).value("v1.0.0").build(),
        ];
        let (req, changes) = render(
            &client(),
            &td,
            &own,
            &Pins::one("web", "repo@sha256:new"),
            &[
                (TAG_RELEASE, "v1.1.0".into()),
                (TAG_VERSION, "1.1.0".into()),
            ],
        )
        .unwrap();
        let input = req.as_input();
        assert_eq!(input.get_family(), &td.family);
        assert_eq!(input.get_task_role_arn(), &td.task_role_arn);
        assert_eq!(input.get_execution_role_arn(), &td.execution_role_arn);
        assert_eq!(input.get_network_mode(), &td.network_mode);
        assert_eq!(input.get_volumes(), &td.volumes);
        assert_eq!(input.get_placement_constraints(), &td.placement_constraints);
        assert_eq!(
            input.get_requires_compatibilities(),
            &td.requires_compatibilities
        );
        assert_eq!(input.get_cpu(), &td.cpu);
        assert_eq!(input.get_memory(), &td.memory);
        assert_eq!(input.get_pid_mode(), &td.pid_mode);
        assert_eq!(input.get_ipc_mode(), &td.ipc_mode);
        assert_eq!(input.get_proxy_configuration(), &td.proxy_configuration);
        assert_eq!(
            input.get_inference_accelerators(),
            &td.inference_accelerators
        );
        assert_eq!(input.get_ephemeral_storage(), &td.ephemeral_storage);
        assert_eq!(input.get_runtime_platform(), &td.runtime_platform);
        assert_eq!(
            input.get_enable_fault_injection(),
            &td.enable_fault_injection
        );
        let cs = input.get_container_definitions().as_ref().unwrap();
        assert_eq!(cs[0].image(), Some("repo@sha256:new"));
        assert_eq!(
            cs[0].environment(),
            td.container_definitions()[0].environment(),
            "other container fields kept"
        );
        assert_eq!(
            cs[1],
            td.container_definitions()[1],
            "other containers untouched"
        );
        let tags = input.get_tags().as_ref().unwrap();
        assert!(
            tags.iter()
                .any(|t| t.key() == Some("team") && t.value() == Some("shop")),
            "own tags kept"
        );
        assert!(tags
            .iter()
            .any(|t| t.key() == Some(TAG_RELEASE) && t.value() == Some("v1.1.0")));
        assert_eq!(
            tags.iter().filter(|t| t.key() == Some(TAG_RELEASE)).count(),
            1
        );
        let shown: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "containerDefinitions[web].image: repo@sha256:old → repo@sha256:new",
                "tags[ferry:release]: v1.0.0 → v1.1.0",
                "tags[ferry:version]: (none) → 1.1.0",
            ]
        );
    }

    #[test]
    fn an_identical_request_is_the_same_even_with_tags_reordered() {
        let td = full_task_definition();
        let tags = [
            (TAG_RELEASE, "v1.1.0".to_string()),
            (TAG_VERSION, "1.1.0".to_string()),
        ];
        let (a, _) = render(
            &client(),
            &td,
            &[],
            &Pins::one("web", "repo@sha256:new"),
            &tags,
        )
        .unwrap();
        let reversed: Vec<(&str, String)> = tags.iter().rev().cloned().collect();
        let (b, _) = render(
            &client(),
            &td,
            &[],
            &Pins::one("web", "repo@sha256:new"),
            &reversed,
        )
        .unwrap();
        assert!(same_request(a.as_input(), b.as_input()));
        let (c, _) = render(
            &client(),
            &td,
            &[],
            &Pins::one("web", "repo@sha256:other"),
            &tags,
        )
        .unwrap();
        assert!(!same_request(a.as_input(), c.as_input()));
    }

    #[test]
    fn render_names_missing_container() {
        let err = render(
            &client(),
            &full_task_definition(),
            &[],
            &Pins::one("api", "x"),
            &[],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no container named \"api\"") && msg.contains("web, sidecar"),
            "{msg}"
        );
    }
}
