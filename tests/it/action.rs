//! The release and the action, dry-run locally: `scripts/package-release` packages the ferry
//! binary built here exactly as the release workflow does, a local HTTP server plays the
//! GitHub release, and `scripts/action-install` (the action's install step) downloads,
//! verifies and installs it, and refuses a tampered or unpinned download.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

const VERSION: &str = "v9.9.9";
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A release directory as GitHub serves it: `<base>/<tag>/<asset>`.
fn release(dir: &Path) -> String {
    let assets = dir.join(VERSION);
    let out = Command::new(script("package-release"))
        .args([VERSION, TARGET, env!("CARGO_BIN_EXE_ferry")])
        .arg(&assets)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "package-release: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = format!("ferry-{VERSION}-{TARGET}.tar.gz");
    let line = std::fs::read_to_string(assets.join(format!("{archive}.sha256"))).unwrap();
    // The release workflow joins every target's line into SHA256SUMS.
    std::fs::write(assets.join("SHA256SUMS"), &line).unwrap();
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(assets.join(&archive))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "ferry\nREADME.md\n",
        "the archive holds the binary and the README at its top level"
    );
    line.split_whitespace().next().unwrap().to_string()
}

fn install(base: &str, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(script("action-install"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("FERRY_VERSION", VERSION)
        .env("FERRY_REPOSITORY", "acme/ferry")
        .env("FERRY_DOWNLOAD_BASE", base)
        .env("FERRY_INSTALL_DIR", dir.join("bin"))
        .env("GITHUB_PATH", dir.join("github_path"))
        .env("RUNNER_OS", "Linux")
        .env("RUNNER_ARCH", "X64")
        .env("RUNNER_TEMP", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_action_installs_a_verified_release_binary_and_refuses_anything_else() {
    let site = tempfile::tempdir().unwrap();
    let sha = release(site.path());
    let port = free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(site.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "http.server");
    let base = format!("http://127.0.0.1:{port}");
    let run = |env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let o = install(&base, dir.path(), env);
        (dir, o)
    };

    // The release, checksum verified, on PATH, and it runs.
    let (dir, o) = run(&[]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("sha256 {sha}")),
        "{}",
        stdout(&o)
    );
    let bin = dir.path().join("bin/ferry");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("ferry {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("github_path")).unwrap(),
        format!("{}\n", dir.path().join("bin").display())
    );

    // A checksum pinned in the workflow: the right one passes, another is refused.
    let (_d, o) = run(&[("FERRY_SHA256", &sha)]);
    assert_exit(&o, 0);
    let (d, o) = run(&[("FERRY_SHA256", &"0".repeat(64))]);
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("::error title=ferry install::checksum mismatch"),
        "{}",
        stdout(&o)
    );
    assert!(!d.path().join("bin/ferry").exists(), "nothing installed");

    // Used at a release tag, the version defaults to it; at a branch or SHA it must be given.
    let (_d, o) = run(&[("FERRY_VERSION", ""), ("FERRY_ACTION_REF", VERSION)]);
    assert_exit(&o, 0);
    let (_d, o) = run(&[("FERRY_VERSION", ""), ("FERRY_ACTION_REF", "main")]);
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("set the action's `version` input"),
        "{}",
        stdout(&o)
    );
    let (_d, o) = run(&[("FERRY_VERSION", "v1.0.0; rm -rf /")]);
    assert_exit(&o, 1);
    assert!(stdout(&o).contains("is not vX.Y.Z"), "{}", stdout(&o));

    // A runner without a release binary says so.
    let (_d, o) = run(&[("RUNNER_OS", "Windows")]);
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("no ferry release binary for Windows/X64"),
        "{}",
        stdout(&o)
    );

    // Tampered bytes on the server: refused against SHA256SUMS.
    let archive = site
        .path()
        .join(VERSION)
        .join(format!("ferry-{VERSION}-{TARGET}.tar.gz"));
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.push(0);
    std::fs::write(&archive, bytes).unwrap();
    let (d, o) = run(&[]);
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("SHA256SUMS says") && stdout(&o).contains("checksum mismatch"),
        "{}",
        stdout(&o)
    );
    assert!(!d.path().join("bin/ferry").exists(), "nothing installed");

    let _ = server.kill();
    let _ = server.wait();
}

/// The action's deploy step (`scripts/action-deploy`): each input becomes its flag, through
/// the environment (a tag with shell characters stays one argument), ferry's exit code is the
/// step's, and `digest` is derived from `image` when ferry did not write it.
#[test]
fn the_action_deploy_step_passes_each_input_as_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = dir.path().join("args");
    // A stand-in ferry that records its arguments, one per line, and answers like a
    // rolled-back deploy of an older ferry (no `digest` output).
    let stub = bin.join("ferry");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'image=1.dkr.ecr.eu-west-1.amazonaws.com/shop@sha256:abc' >> \"$GITHUB_OUTPUT\"\nexit 4\n",
            seen.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&stub)
        .status()
        .unwrap();
    let output = dir.path().join("github_output");
    std::fs::write(&output, "").unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(script("action-deploy"));
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("GITHUB_OUTPUT", &output);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let o = run(&[
        ("FERRY_TAG", "v1.2.3; echo pwned"),
        ("FERRY_WAIT_FOR_IDLE", "true"),
        ("FERRY_FROM", "v1.2.3-rc.1"),
        ("FERRY_DEADLINE_INPUT", "50m"),
        ("FERRY_ALLOW_DOWNGRADE", "true"),
    ]);
    assert_eq!(o.status.code(), Some(4), "ferry's exit code is the step's");
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "deploy\n--tag\nv1.2.3; echo pwned\n--wait-for-idle\n--from\nv1.2.3-rc.1\n--deadline\n50m\n--allow-downgrade\n"
    );
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .ends_with("digest=sha256:abc\n"),
        "the digest output is derived from the image"
    );
    // No inputs: `ferry deploy` on the workflow's event, nothing else.
    run(&[
        ("FERRY_WAIT_FOR_IDLE", "false"),
        ("FERRY_ALLOW_DOWNGRADE", "false"),
    ]);
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "deploy\n");

    // The real binary reads the deadline input as its flag (a bad value is refused by name).
    std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &stub).unwrap();
    let o = run(&[("FERRY_TAG", "v1.0.0"), ("FERRY_DEADLINE_INPUT", "soon")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("invalid value 'soon' for '--deadline <DURATION>'"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A cancelled job signals the step's entry process only (the step `exec`s action-deploy):
/// SIGINT and SIGTERM reach ferry, and the step ends with ferry's own exit code once ferry
/// has finished (releasing its claim), not before.
#[test]
fn the_action_deploy_step_forwards_a_cancel_to_ferry() {
    for (signal, name) in [("-INT", "SIGINT"), ("-TERM", "SIGTERM")] {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let seen = dir.path().join("signal");
        // A stand-in ferry that says it started, records the signal it gets, takes a moment
        // to clean up, and exits 5 (as ferry does when stopped mid-rollout).
        let stub = bin.join("ferry");
        std::fs::write(
            &stub,
            format!(
                "#!/usr/bin/env python3\nimport signal, sys, time\n\
def on(n, _f):\n    time.sleep(0.5)\n    open({seen:?}, 'w').write(signal.Signals(n).name)\n    sys.exit(5)\n\
signal.signal(signal.SIGINT, on)\nsignal.signal(signal.SIGTERM, on)\n\
print('started', flush=True)\ntime.sleep(30)\nsys.exit(0)\n",
                seen = seen.display().to_string()
            ),
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        let mut child = Command::new(script("action-deploy"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "started");
        let started = std::time::Instant::now();
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}: not forwarded"
        );
        assert_eq!(
            status.code(),
            Some(5),
            "{name}: ferry's exit code is the step's"
        );
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap_or_default(),
            name,
            "ferry got the step's {name}"
        );
    }
}
