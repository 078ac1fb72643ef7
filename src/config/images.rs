//! The images a release is made of: `[[images]]` (name, repository), or the one `[image]` of
//! an environment that deploys a single image. A release is the set {image name → digest};
//! each service says which of its containers run which image (`container` + `image`, and
//! `containers` for more), and a container named nowhere keeps its image (a sidecar).

use serde::{Deserialize, Serialize};

use super::{Environment, EnvironmentFile, ServiceConfig};

/// One image of the release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// How services and records name it, e.g. `web`, `worker`.
    pub name: String,
    /// Its ECR repository in this environment's account, e.g. `shop/web`.
    pub repository: String,
}

/// A container a service runs an image of the release in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin<'a> {
    pub container: &'a str,
    pub image: &'a ImageEntry,
}

/// The images of `file`, the first first; `[image]` is one image named after its repository's
/// last path segment.
pub(super) fn of(file: &EnvironmentFile) -> Vec<ImageEntry> {
    if !file.images.is_empty() {
        return file.images.clone();
    }
    file.image
        .as_ref()
        .map(|i| {
            vec![ImageEntry {
                name: i
                    .repository
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                repository: i.repository.clone(),
            }]
        })
        .unwrap_or_default()
}

impl Environment {
    /// The repository of the first image: release records and claims live there.
    pub fn repository(&self) -> &str {
        self.images.first().map_or("", |i| i.repository.as_str())
    }

    /// The image named `name`.
    pub fn image(&self, name: &str) -> Option<&ImageEntry> {
        self.images.iter().find(|i| i.name == name)
    }

    /// The image `cfg.container` runs (`image`, by default the first).
    pub fn main_image(&self, cfg: &ServiceConfig) -> Option<&ImageEntry> {
        match &cfg.image {
            Some(name) => self.image(name),
            None => self.images.first(),
        }
    }

    /// Every container of `cfg` that runs an image of the release, `container` first.
    pub fn pins<'a>(&'a self, cfg: &'a ServiceConfig) -> Vec<Pin<'a>> {
        let main = self.main_image(cfg).map(|image| Pin {
            container: &cfg.container,
            image,
        });
        main.into_iter()
            .chain(cfg.containers.iter().filter_map(|(c, name)| {
                self.image(name).map(|image| Pin {
                    container: c,
                    image,
                })
            }))
            .collect()
    }

    /// `registry/repository` of each image, the first first.
    pub fn image_locations(&self) -> Vec<String> {
        let host = self.registry_host();
        self.images
            .iter()
            .map(|i| format!("{host}/{}", i.repository))
            .collect()
    }

    /// The image names, the first first.
    pub fn image_names(&self) -> Vec<&str> {
        self.images.iter().map(|i| i.name.as_str()).collect()
    }
}

/// ECR repository names: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2-256.
pub fn is_repository_name(s: &str) -> bool {
    (2..=256).contains(&s.len())
        && s.split('/').all(|comp| {
            !comp.is_empty()
                && comp.split(['.', '_', '-']).all(|w| {
                    !w.is_empty()
                        && w.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
        })
}

fn is_image_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Field checks of the images and of how services use them.
pub(super) fn check(env: &Environment) -> Vec<String> {
    let f = &env.file;
    let mut p = Vec::new();
    match (&f.image, f.images.is_empty()) {
        (Some(_), false) => p.push(
            "field `image`: give either [image] (one image) or [[images]] (several), not both; move its repository into [[images]]".into(),
        ),
        (None, true) => p.push(
            "field `images`: no image; add [[images]] with `name` and `repository` (or [image] with `repository` for a single image)".into(),
        ),
        _ => {}
    }
    if let Some(i) = &f.image {
        if !is_repository_name(&i.repository) {
            p.push(format!(
                "field `image.repository`: {:?} is not an ECR repository name (lowercase, digits, . _ - and /, e.g. \"shop/api\")",
                i.repository
            ));
        }
    }
    for (i, img) in f.images.iter().enumerate() {
        if !is_image_name(&img.name) {
            p.push(format!(
                "field `images[{i}].name`: {:?} must be 1-64 lowercase letters, digits, - and _ (e.g. \"web\")",
                img.name
            ));
        }
        if !is_repository_name(&img.repository) {
            p.push(format!(
                "field `images[{i}].repository`: {:?} is not an ECR repository name (lowercase, digits, . _ - and /, e.g. \"shop/api\")",
                img.repository
            ));
        }
        if f.images[..i].iter().any(|o| o.name == img.name) {
            p.push(format!(
                "field `images[{i}].name`: image {:?} is listed twice",
                img.name
            ));
        }
        if f.images[..i].iter().any(|o| o.repository == img.repository) {
            p.push(format!(
                "field `images[{i}].repository`: {:?} holds another image already; each image has its own repository",
                img.repository
            ));
        }
    }
    let known = env.image_names().join(", ");
    for (i, s) in f.services.iter().enumerate() {
        if let Some(name) = &s.image {
            if env.image(name).is_none() {
                p.push(format!(
                    "field `services[{i}].image`: no image named {name:?} (the images are: {known}); name one of them, or add it to [[images]]"
                ));
            }
        }
        for (c, name) in &s.containers {
            if c == &s.container {
                p.push(format!(
                    "field `services[{i}].containers`: {c:?} is the service's `container` already; give its image with `image`"
                ));
            }
            if c.trim().is_empty() || c.len() > 255 {
                p.push(format!(
                    "field `services[{i}].containers`: {c:?} must be a non-empty container name"
                ));
            }
            if env.image(name).is_none() {
                p.push(format!(
                    "field `services[{i}].containers.{c}`: no image named {name:?} (the images are: {known}); name one of them, or add it to [[images]]"
                ));
            }
        }
    }
    if !f.services.is_empty() {
        for (i, img) in env.images.iter().enumerate() {
            let used = f
                .services
                .iter()
                .any(|s| env.pins(s).iter().any(|pin| pin.image.name == img.name));
            if !used {
                p.push(format!(
                    "field `images[{i}]`: no container runs image {:?}; map it in a service (`image = {:?}`, or `containers = {{ <container> = {:?} }}`), or remove it",
                    img.name, img.name, img.name
                ));
            }
        }
    }
    p
}

/// A promotion moves the whole set: the target names the same images as its source (an
/// environment of one image may name it differently).
pub(super) fn check_promotion(env: &Environment, source: &Environment) -> Option<String> {
    if env.images.len() == 1 && source.images.len() == 1 {
        return None;
    }
    let mut mine = env.image_names();
    let mut theirs = source.image_names();
    mine.sort_unstable();
    theirs.sort_unstable();
    (mine != theirs).then(|| {
        format!(
            "{}: field `images`: {} promotes from {}, whose release is the images {}, but names {}; a promotion moves the whole set, so both name the same images",
            env.path.display(),
            env.name,
            source.name,
            theirs.join(", "),
            mine.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::Environments;

    const HEAD: &str = r#"
account_id = "111111111111"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::111111111111:role/ferry-deploy"
[release]
match = "prerelease"
"#;

    const TWO: &str = r#"
[[images]]
name = "web"
repository = "shop/web"
[[images]]
name = "worker"
repository = "shop/worker"
"#;

    fn load(body: &str) -> Result<Environments, String> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("staging.toml"), format!("{HEAD}{body}")).unwrap();
        Environments::load(d.path()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn services_pin_their_containers_to_images_by_name() {
        let envs = load(&format!(
            r#"{TWO}
[[services]]
cluster = "shop"
service = "web"
container = "web"
[[services]]
cluster = "shop"
service = "worker"
container = "worker"
image = "worker"
containers = {{ migrate = "web" }}
"#
        ))
        .unwrap();
        let env = envs.get("staging").unwrap();
        assert_eq!(env.image_names(), ["web", "worker"]);
        assert_eq!(env.repository(), "shop/web");
        let pins = |i: usize| -> Vec<(String, String)> {
            env.pins(&env.file.services[i])
                .iter()
                .map(|p| (p.container.to_string(), p.image.name.clone()))
                .collect()
        };
        assert_eq!(pins(0), [("web".to_string(), "web".to_string())]);
        assert_eq!(
            pins(1),
            [
                ("worker".to_string(), "worker".to_string()),
                ("migrate".to_string(), "web".to_string())
            ]
        );
    }

    #[test]
    fn one_image_is_named_after_its_repository() {
        let envs = load(
            r#"
[image]
repository = "shop/api"
[[services]]
cluster = "shop"
service = "api"
container = "api"
"#,
        )
        .unwrap();
        let env = envs.get("staging").unwrap();
        assert_eq!(env.image_names(), ["api"]);
        assert_eq!(env.pins(&env.file.services[0])[0].container, "api");
    }

    #[test]
    fn mistakes_name_the_field_and_the_fix() {
        let svc = |extra: &str| {
            format!(
                "[[services]]\ncluster = \"shop\"\nservice = \"web\"\ncontainer = \"web\"\n{extra}"
            )
        };
        // (name, body, what the error must say)
        let cases = [
            (
                "an image no container uses",
                format!("{TWO}{}", svc("")),
                "field `images[1]`: no container runs image \"worker\"",
            ),
            (
                "a container mapped to an unknown image",
                format!("{TWO}{}", svc("containers = { worker = \"wrker\" }")),
                "field `services[0].containers.worker`: no image named \"wrker\" (the images are: web, worker)",
            ),
            (
                "a service's image unknown",
                format!("{TWO}{}", svc("image = \"api\"")),
                "field `services[0].image`: no image named \"api\"",
            ),
            (
                "the main container named again",
                format!("{TWO}{}", svc("containers = { web = \"worker\" }")),
                "field `services[0].containers`: \"web\" is the service's `container` already",
            ),
            (
                "[image] and [[images]]",
                format!("[image]\nrepository = \"shop/api\"\n{TWO}{}", svc("")),
                "field `image`: give either [image] (one image) or [[images]] (several), not both",
            ),
            ("no image at all", svc(""), "field `images`: no image"),
            (
                "an image listed twice",
                format!(
                    "[[images]]\nname = \"web\"\nrepository = \"shop/web\"\n[[images]]\nname = \"web\"\nrepository = \"shop/web2\"\n{}",
                    svc("")
                ),
                "field `images[1].name`: image \"web\" is listed twice",
            ),
            (
                "a bad image name",
                format!("[[images]]\nname = \"Web\"\nrepository = \"shop/web\"\n{}", svc("image = \"Web\"")),
                "field `images[0].name`: \"Web\" must be 1-64 lowercase letters",
            ),
        ];
        for (name, body, want) in cases {
            let err = load(&body).expect_err(name);
            assert!(err.contains("staging.toml"), "{name}: {err}");
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn a_promotion_moves_the_same_set_of_images() {
        let d = tempfile::tempdir().unwrap();
        let svc = "[[services]]\ncluster = \"shop\"\nservice = \"web\"\ncontainer = \"web\"\n[[services]]\ncluster = \"shop\"\nservice = \"worker\"\ncontainer = \"worker\"\nimage = \"worker\"\n";
        std::fs::write(d.path().join("staging.toml"), format!("{HEAD}{TWO}{svc}")).unwrap();
        let prod = r#"
account_id = "222222222222"
region = "eu-west-1"
[role]
arn = "arn:aws:iam::222222222222:role/ferry-deploy"
[release]
match = "final"
[promote]
from = "staging"
[image]
repository = "shop/web"
[[services]]
cluster = "shop"
service = "web"
container = "web"
"#;
        std::fs::write(d.path().join("production.toml"), prod).unwrap();
        let err = format!("{:#}", Environments::load(d.path()).unwrap_err());
        assert!(
            err.contains("production.toml: field `images`: production promotes from staging, whose release is the images web, worker, but names web"),
            "{err}"
        );
    }
}
