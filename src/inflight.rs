//! What this process has under way outside itself: each service's change in ECS (the
//! revision it registered, the deployment `UpdateService` or `CreateDeployment` answered, a
//! rollback) and the promotion copy. The deploy steps note each change as it happens, so that
//! an interruption (SIGINT, SIGTERM, the run deadline), which drops the run wherever it is,
//! can still say by name what goes on without ferry and whether a re-run is safe
//! (`crate::render::interruption`). Nothing here decides anything.

use std::sync::Mutex;

/// Where one service's change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A revision is registered; the service is not changed.
    Registered,
    /// `UpdateService` (or CodeDeploy's `CreateDeployment`) was sent; no answer yet.
    Updating,
    /// ECS (or CodeDeploy) rolls out this run's deployment.
    RollingOut,
    /// The rollout ended, well (`true`) or not.
    RolledOut(bool),
    /// ferry was bringing the service back to its previous revision.
    RollingBack,
    /// The release failed and the service was brought back (or left to whoever replaced it).
    RolledBack,
}

/// One service this run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `cluster/service`.
    pub name: String,
    /// The revision it ran before this run.
    pub previous: String,
    /// The revision this run registered.
    pub revision: String,
    /// The ECS deployment (`ecs-svc/…`) or CodeDeploy deployment (`d-…`) of this run.
    pub deployment: Option<String>,
    /// Where it stands.
    pub phase: Phase,
}

/// Everything under way, as an interruption finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlight {
    /// The services this run changed, in the order it changed them.
    pub services: Vec<Service>,
    /// The promotion copies under way (every image of the release, every target of a wave):
    /// their destinations.
    pub copying: Vec<String>,
}

static STATE: Mutex<InFlight> = Mutex::new(InFlight {
    services: Vec::new(),
    copying: Vec::new(),
});

fn with(f: impl FnOnce(&mut InFlight)) {
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
}

fn service(name: &str, f: impl FnOnce(&mut Service)) {
    with(|s| {
        if let Some(svc) = s.services.iter_mut().rev().find(|x| x.name == name) {
            f(svc);
        }
    });
}

/// `name` (`cluster/service`, running `previous`) has the new revision `revision`.
pub fn registered(name: &str, previous: &str, revision: &str) {
    with(|s| {
        s.services.retain(|x| x.name != name);
        s.services.push(Service {
            name: name.into(),
            previous: previous.into(),
            revision: revision.into(),
            deployment: None,
            phase: Phase::Registered,
        });
    });
}

/// The update of `name` was sent.
pub fn updating(name: &str) {
    service(name, |s| s.phase = Phase::Updating);
}

/// The update of `name` was answered: `deployment` rolls out.
pub fn rolling_out(name: &str, deployment: Option<&str>) {
    service(name, |s| {
        s.phase = Phase::RollingOut;
        s.deployment = deployment.map(str::to_string);
    });
}

/// ferry saw the rollout of `name` end.
pub fn rolled_out(name: &str, succeeded: bool) {
    service(name, |s| s.phase = Phase::RolledOut(succeeded));
}

/// ferry begins bringing `name` back.
pub fn rolling_back(name: &str) {
    service(name, |s| s.phase = Phase::RollingBack);
}

/// ferry is done with `name`'s rollback (whatever its outcome: the report says it).
pub fn rolled_back(name: &str) {
    service(name, |s| s.phase = Phase::RolledBack);
}

/// A promotion copy to `destination` begins.
pub fn copying(destination: &str) {
    with(|s| s.copying.push(destination.to_string()));
}

/// The promotion copy to `destination` ended (whatever its outcome).
pub fn copied(destination: &str) {
    with(|s| {
        if let Some(i) = s.copying.iter().position(|d| d == destination) {
            s.copying.remove(i);
        }
    });
}

/// What is under way now.
pub fn snapshot() -> InFlight {
    STATE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// What became of the claims this run held when it was interrupted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// Claim tags removed.
    pub released: Vec<String>,
    /// Claim tags left behind, with why (they lapse on their own).
    pub left: Vec<(String, String)>,
}
