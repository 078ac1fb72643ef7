"""The simulator's state and the knobs the control API sets, with lookups and answer shapes.

State: clusters, task definitions (by family), services (each with its ECS `deployments[]` and
`events[]`), tasks, service deployments and service revisions. Knobs: how images behave,
injected faults, timing, read lag, denied operations, rate limits, alarm states, and clusters
without capacity. Keys starting with `_` are the simulator's own and never leave it.

One `World` is one region (see `regions.py`): its state and knobs are its own, except what
`shared_parts()` holds for every region (the lock, how images behave, timing, the call log).
"""
import copy
import math
import threading
import uuid
from collections import Counter, deque

from .util import ApiError, TokenBucket, now, quiet

# Every duration is multiplied by --time-scale. The defaults keep one rollout near a second.
TIMING_DEFAULTS = {
    "task_start_seconds": 0.3,         # launch -> RUNNING
    "health_seconds": 0.3,             # RUNNING -> container health check HEALTHY
    "bake_seconds": 0.2,               # COMPLETED -> SUCCESSFUL (no alarms, no bakeTimeInMinutes)
    "stop_seconds": 0.2,               # desiredStatus STOPPED -> STOPPED (no load balancer)
    "slow_start_seconds": 3600.0,      # the `slow` behaviour
    "pending_seconds": 0.1,            # PENDING -> IN_PROGRESS, ROLLBACK_/STOP_REQUESTED -> next state
    "steady_seconds": 0.3,             # all desired tasks up this long = steady state
    "elb_health_seconds": 0.3,         # a registered target's first health verdict
    "deregistration_delay_seconds": 0.5,  # a target drains this long before its task stops
    "alarm_bake_seconds": 0.5,         # ECS computes the alarm bake time; this stands in for it
    "restart_backoff_seconds": 0.1,    # first delay after repeated launch failures, doubling...
    "restart_backoff_max_seconds": 1.6,  # ...up to this (ECS: 27 minutes)
    "exit_after_seconds": 0.2,         # `crash-after-running`: RUNNING -> exit
    "codedeploy_minute_seconds": 60.0,
    "ecs_minute_seconds": 60.0,        # one minute of ECS: bakeTimeInMinutes, canary and linear bake times
    "stage_seconds": 0.3,              # a blue/green lifecycle stage with nothing to wait for (no hook)  # one minute of CodeDeploy (ready wait, canary/linear interval, termination wait)
}

# Service deployment states that have ended (StopServiceDeployment refuses them).
ENDED = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")


def shared_parts():
    """What every region of one simulator shares: one lock (so one clock moves them all), how
    images behave (and how often each was launched), timing, and the call log."""
    return {"lock": threading.RLock(), "images": {}, "started": Counter(), "timing": dict(TIMING_DEFAULTS),
            "call_log": deque(maxlen=50000)}


class World:
    def __init__(self, account, region, scale, read_lag=0.0, shared=None):
        shared = shared or shared_parts()
        self.lock = shared["lock"]
        self.account, self.region, self.scale = account, region, scale
        self.clusters = {}              # name -> cluster
        self.families = {}              # family -> [task definition]
        self.td_tags = {}               # task definition ARN -> [{"key","value"}]
        self.services = {}              # (cluster, name) -> service
        self.tasks = {}                 # task ARN -> task
        self.service_deployments = {}   # ARN -> service deployment
        self.revisions = {}             # service revision ARN -> service revision
        self.images = shared["images"]  # image -> behaviour (every region)
        self.started = shared["started"]  # image -> tasks launched (for a behaviour's `failures`)
        self.faults = {}                # operation -> [error code, remaining]
        self.calls = Counter()
        self.call_log = shared["call_log"]  # (monotonic seconds, operation, region, items named or None), in arrival order
        self.timing = shared["timing"]
        self.rr = Counter()
        self.lag = {"default": float(read_lag), "services": {}}  # seconds; (cluster, service) -> seconds
        self.denied = set()             # operations answering AccessDeniedException
        self.throttles = {}             # operation -> TokenBucket
        self.alarms = {}                # CloudWatch alarm name -> OK | ALARM | INSUFFICIENT_DATA
        self.no_capacity = set()        # clusters where no task can be placed
        self.pruned_at = 0.0            # when stopped tasks were last pruned

    # ---------- naming and time
    def arn(self, kind, rest):
        return f"arn:aws:ecs:{self.region}:{self.account}:{kind}/{rest}"

    def foreign(self, ref):
        """True for an ARN of another region: this region does not see that resource."""
        parts = (ref or "").split(":")
        return len(parts) > 3 and parts[0] == "arn" and parts[3] != self.region

    def t(self, key):
        return self.timing[key] * self.scale

    def new_id(self):
        return str(uuid.uuid4())

    # ---------- lookups
    def cluster(self, ref):
        c = None if self.foreign(ref) else self.clusters.get((ref or "default").split("/")[-1])
        if c is None:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return c

    def service(self, cluster_ref, ref):
        c = self.cluster(cluster_ref)
        s = None if self.foreign(ref) else self.services.get((c["clusterName"], (ref or "").split("/")[-1]))
        if s is None or s["status"] != "ACTIVE":
            raise ApiError("ServiceNotFoundException", "Service not found.")
        return s

    def service_by_arn(self, arn):
        return next(s for s in self.services.values() if s["serviceArn"] == arn)

    def task_definition(self, ref):
        if not ref:
            raise ApiError("ClientException", "TaskDefinition is required.")
        family, _, rev = ref.split("task-definition/")[-1].partition(":")
        revs = [] if self.foreign(ref) else self.families.get(family) or []
        found = [td for td in revs if str(td["revision"]) == rev] if rev else \
            [td for td in revs if td["status"] == "ACTIVE"][-1:]
        if not found:
            raise ApiError("ClientException", "Unable to describe task definition.")
        return found[0]

    def deployment(self, svc, dep_id):
        return next((d for d in svc["deployments"] if d["id"] == dep_id), None)

    # ---------- how an image behaves
    def behaviour_of_image(self, image):
        if image in self.images:
            return image, self.images[image]
        if "@sha256:" in (image or ""):
            digest = image.split("@", 1)[1]
            for k, v in self.images.items():
                if k.endswith("@" + digest):
                    return k, v
        return image, {"version": "unknown", "behavior": "healthy"}

    def td_behaviour(self, td):
        """The behaviour of a task definition's essential container (SIM_BEHAVIOR overrides)."""
        cs = td["containerDefinitions"]
        c = next((c for c in cs if c.get("essential", True)), cs[0])
        key, b = self.behaviour_of_image(c.get("image"))
        b = dict(b, _key=key)
        for kv in c.get("environment") or []:
            if kv.get("name") == "SIM_BEHAVIOR":
                b["behavior"] = kv.get("value")
        return b

    # ---------- service settings
    def breaker(self, svc):
        return svc["deploymentConfiguration"].get("deploymentCircuitBreaker") or {"enable": False, "rollback": False}

    def threshold(self, svc):
        return int(min(200, max(3, math.ceil(0.5 * svc["desiredCount"]))))

    def alarm_config(self, svc):
        a = svc["deploymentConfiguration"].get("alarms") or {}
        return a if a.get("enable") and a.get("alarmNames") else None

    def lag_seconds(self, svc):
        return self.lag["services"].get((svc["clusterName"], svc["serviceName"]), self.lag["default"])

    def set_rate_limit(self, op, per_second, burst=None):
        if per_second is None or float(per_second) <= 0:
            self.throttles.pop(op, None)
        else:
            self.throttles[op] = TokenBucket(float(per_second), burst)

    # ---------- events
    def event(self, svc, message, kind=None):
        """Adds a service event, newest first, 100 kept. With `kind`, a repeat of the same message
        is omitted until `resolved(kind)`, as ECS omits duplicate messages until the cause is resolved."""
        if kind is not None:
            if svc["_quiet"].get(kind) == message:
                return
            svc["_quiet"][kind] = message
        svc["events"].insert(0, {"id": self.new_id(), "createdAt": now(), "message": message})
        del svc["events"][100:]

    def resolved(self, svc, kind):
        svc["_quiet"].pop(kind, None)

    # ---------- shapes
    def live_tasks(self, d):
        return [t for t in d["_tasks"] if t["lastStatus"] != "STOPPED"]

    def counts(self, d):
        ts = self.live_tasks(d)
        return (sum(1 for t in ts if t["lastStatus"] == "RUNNING" and t["_stop_at"] is None),
                sum(1 for t in ts if t["lastStatus"] in ("PROVISIONING", "PENDING")))

    def deployment_shape(self, d):
        running, pending = self.counts(d)
        return quiet(d) | {"runningCount": running, "pendingCount": pending}

    def service_shape(self, svc):
        out = quiet(svc)
        out.pop("clusterName", None)
        out["deployments"] = [self.deployment_shape(d) for d in svc["deployments"]]
        out["runningCount"] = sum(d["runningCount"] for d in out["deployments"])
        out["pendingCount"] = sum(d["pendingCount"] for d in out["deployments"])
        if svc["deploymentController"].get("type") == "CODE_DEPLOY":
            out["taskSets"] = [self.task_set_shape(svc, ts) for ts in svc["_task_sets"]]
            out["runningCount"] = sum(ts["runningCount"] for ts in out["taskSets"])
            out["pendingCount"] = sum(ts["pendingCount"] for ts in out["taskSets"])
        return copy.deepcopy(out)

    def sd_shape(self, sd):
        out = {k: v for k, v in quiet(sd).items() if v != ""}
        if "lifecycleHookDetails" in out:
            out["lifecycleHookDetails"] = [quiet(h) for h in out["lifecycleHookDetails"]]
        return copy.deepcopy(out)

    def sd_brief(self, sd):
        full = self.sd_shape(sd)
        brief = {k: full[k] for k in ("serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt",
                                      "finishedAt", "status", "statusReason") if k in full}
        brief["targetServiceRevisionArn"] = sd["targetServiceRevision"]["arn"]
        return brief

    def public(self, obj):
        return copy.deepcopy(quiet(obj))
