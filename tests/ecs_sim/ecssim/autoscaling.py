"""Application Auto Scaling for ECS services (awsJson1_1, `X-Amz-Target:
AnyScaleFrontendService.<Op>`), in the same process as the ECS simulator, so a scaling activity
changes the same service's desired count.

Scalable targets (`ecs` / `ecs:service:DesiredCount` / `service/<cluster>/<service>`) are
registered, updated (an upsert: what a request leaves out keeps its value, `SuspendedState`
included), described, tagged and deregistered; scaling policies are stored. Nothing here watches
metrics: a test triggers a scaling activity with `POST /_sim/scaling` at the moment it chooses,
and the activity happens, or not, the way Application Auto Scaling documents it: not while that
kind of scaling is suspended, no scale-in while an ECS deployment is in progress, never outside
the target's minimum and maximum capacity. See README.md for the pages each behaviour follows.
"""
import base64
import re

from .codedeploy import ACTIVE as CD_ACTIVE
from .util import ApiError, now

AS_PREFIX = "AnyScaleFrontendService."
NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
SUSPEND_KEYS = ("DynamicScalingInSuspended", "DynamicScalingOutSuspended", "ScheduledScalingSuspended")
RESOURCE_ID = re.compile(r"^service/([^/]+)/([^/]+)$")
PAGE_MAX = 50
TAGS_MAX = 50
ACTIVITIES_KEPT = 1000


def validation(message):
    return ApiError("ValidationException", message)


class AutoScaling:
    def as_init(self):
        self.as_targets = {}      # resource id -> scalable target (the ecs namespace, one dimension)
        self.as_policies = {}     # (resource id, policy name) -> scaling policy
        self.as_activities = []   # scaling activities, newest first
        self.as_triggers = []     # every POST /_sim/scaling and what came of it (not an AWS record)

    # ---------- requests
    def as_ids(self, req, dimension_required=True):
        """(resource id, cluster, service) of a request naming one ECS scalable target."""
        ns, rid, dim = req.get("ServiceNamespace"), req.get("ResourceId"), req.get("ScalableDimension")
        if ns != NAMESPACE:
            raise validation(f"Unsupported service namespace {ns!r}: the simulator scales ECS services only.")
        if not rid:
            raise validation("ResourceId is required.")
        m = RESOURCE_ID.match(rid)
        if not m:
            raise validation(f"Unsupported resource ID {rid!r}: an ECS service is service/<cluster>/<service>.")
        if (dimension_required or dim is not None) and dim != DIMENSION:
            raise validation(f"Unsupported scalable dimension {dim!r} for service namespace ecs: use {DIMENSION}.")
        return rid, m.group(1), m.group(2)

    def as_target(self, rid):
        t = self.as_targets.get(rid)
        if t is None:
            raise ApiError("ObjectNotFoundException", f"No scalable target registered for service namespace: {NAMESPACE}, "
                                                      f"resource ID: {rid}, scalable dimension: {DIMENSION}")
        return t

    def as_page(self, items, req, key):
        limit = req.get("MaxResults", PAGE_MAX)
        if not isinstance(limit, int) or not 1 <= limit <= PAGE_MAX:
            raise validation(f"MaxResults must be between 1 and {PAGE_MAX}.")
        start = 0
        if req.get("NextToken"):
            try:
                kind, _, offset = base64.urlsafe_b64decode(req["NextToken"].encode()).decode().partition(":")
                start = int(offset)
                if kind != key or start < 0:
                    raise ValueError(kind)
            except (ValueError, UnicodeDecodeError):
                raise ApiError("InvalidNextTokenException", "The next token supplied was invalid.")
        out = {key: items[start:start + limit]}
        if start + limit < len(items):
            out["NextToken"] = base64.urlsafe_b64encode(f"{key}:{start + limit}".encode()).decode()
        return out

    def slr_arn(self):
        return (f"arn:aws:iam::{self.account}:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_ECSService")

    def as_shape(self, t):
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in t.items() if not k.startswith("_")}

    # ---------- scalable targets
    def op_as_RegisterScalableTarget(self, req):
        rid, cluster, name = self.as_ids(req)
        svc = self.services.get((cluster, name))
        if svc is None or svc["status"] != "ACTIVE":
            raise validation(f"ECS service doesn't exist: {rid}")
        t = self.as_targets.get(rid)
        lo, hi = req.get("MinCapacity"), req.get("MaxCapacity")
        if t is None and (lo is None or hi is None):
            raise validation("MinCapacity and MaxCapacity are required when you register a new scalable target.")
        for v in (lo, hi):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise validation("MinCapacity and MaxCapacity must be integers of 0 or more.")
        new_lo = lo if lo is not None else t["MinCapacity"]
        new_hi = hi if hi is not None else t["MaxCapacity"]
        if new_lo > new_hi:
            raise validation(f"Minimum capacity ({new_lo}) cannot be greater than maximum capacity ({new_hi}).")
        state = dict(t["SuspendedState"]) if t else {k: False for k in SUSPEND_KEYS}
        for k, v in (req.get("SuspendedState") or {}).items():
            if k in SUSPEND_KEYS and v is not None:
                state[k] = bool(v)
        if t is None:
            tags = dict(req.get("Tags") or {})
            if len(tags) > TAGS_MAX:
                raise ApiError("TooManyTagsException", f"A scalable target can have at most {TAGS_MAX} tags.")
            t = {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION,
                 "CreationTime": now(), "RoleARN": req.get("RoleARN") or self.slr_arn(),
                 "ScalableTargetARN": f"arn:aws:application-autoscaling:{self.region}:{self.account}:scalable-target/"
                                      f"{self.new_id().replace('-', '')}{self.new_id()[:4]}",
                 "_tags": tags}
            self.as_targets[rid] = t
        elif req.get("RoleARN"):
            t["RoleARN"] = req["RoleARN"]
        t.update(MinCapacity=new_lo, MaxCapacity=new_hi, SuspendedState=state)
        # A new range moves the current capacity into it, as a scaling activity of its own.
        current = svc["desiredCount"]
        if lo is not None and current < new_lo:
            self.as_scale(svc, t, new_lo, f"minimum capacity was set to {new_lo}")
        elif hi is not None and current > new_hi:
            self.as_scale(svc, t, new_hi, f"maximum capacity was set to {new_hi}")
        return {"ScalableTargetARN": t["ScalableTargetARN"]}

    def op_as_DescribeScalableTargets(self, req):
        if not req.get("ServiceNamespace"):
            raise validation("ServiceNamespace is required.")
        wanted, dim = req.get("ResourceIds") or [], req.get("ScalableDimension")
        out = [self.as_shape(t) for t in sorted(self.as_targets.values(), key=lambda t: t["CreationTime"])
               if req["ServiceNamespace"] == NAMESPACE and (not wanted or t["ResourceId"] in wanted)
               and (dim is None or dim == t["ScalableDimension"])]
        return self.as_page(out, req, "ScalableTargets")

    def op_as_DeregisterScalableTarget(self, req):
        rid, _, _ = self.as_ids(req)
        self.as_target(rid)
        del self.as_targets[rid]
        for key in [k for k in self.as_policies if k[0] == rid]:
            del self.as_policies[key]   # deregistering deletes the target's scaling policies
        return {}

    # ---------- tags (scalable targets only)
    def as_by_arn(self, arn):
        t = next((t for t in self.as_targets.values() if t["ScalableTargetARN"] == arn), None)
        if t is None:
            raise ApiError("ResourceNotFoundException", f"No scalable target found for ARN {arn}.")
        return t

    def op_as_TagResource(self, req):
        t = self.as_by_arn(req.get("ResourceARN"))
        tags = dict(t["_tags"], **(req.get("Tags") or {}))
        if len(tags) > TAGS_MAX:
            raise ApiError("TooManyTagsException", f"A scalable target can have at most {TAGS_MAX} tags.")
        t["_tags"] = tags
        return {}

    def op_as_UntagResource(self, req):
        t = self.as_by_arn(req.get("ResourceARN"))
        for k in req.get("TagKeys") or []:
            t["_tags"].pop(k, None)
        return {}

    def op_as_ListTagsForResource(self, req):
        return {"Tags": dict(self.as_by_arn(req.get("ResourceARN"))["_tags"])}

    # ---------- scaling policies (stored; `POST /_sim/scaling` stands in for their alarms)
    def op_as_PutScalingPolicy(self, req):
        rid, _, _ = self.as_ids(req)
        name = req.get("PolicyName")
        if not name:
            raise validation("PolicyName is required.")
        self.as_target(rid)
        kind = req.get("PolicyType", "StepScaling")
        config_key = {"StepScaling": "StepScalingPolicyConfiguration",
                      "TargetTrackingScaling": "TargetTrackingScalingPolicyConfiguration",
                      "PredictiveScaling": "PredictiveScalingPolicyConfiguration"}.get(kind)
        if config_key is None:
            raise validation(f"Unsupported policy type {kind!r}.")
        if not req.get(config_key):
            raise validation(f"{config_key} is required for policy type {kind}.")
        old = self.as_policies.get((rid, name))
        arn = old["PolicyARN"] if old else (f"arn:aws:autoscaling:{self.region}:{self.account}:scalingPolicy:{self.new_id()}:"
                                            f"resource/ecs/{rid}:policyName/{name}")
        alarms = []
        if kind == "TargetTrackingScaling":
            suffix = self.new_id()
            alarms = [{"AlarmName": f"TargetTracking-{rid}-{side}-{suffix}",
                       "AlarmARN": f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:TargetTracking-{rid}-{side}-{suffix}"}
                      for side in ("AlarmHigh", "AlarmLow")]
        self.as_policies[(rid, name)] = {
            "PolicyARN": arn, "PolicyName": name, "ServiceNamespace": NAMESPACE, "ResourceId": rid,
            "ScalableDimension": DIMENSION, "PolicyType": kind, config_key: req[config_key], "Alarms": alarms,
            "CreationTime": old["CreationTime"] if old else now()}
        return {"PolicyARN": arn, "Alarms": alarms}

    def op_as_DescribeScalingPolicies(self, req):
        if not req.get("ServiceNamespace"):
            raise validation("ServiceNamespace is required.")
        names, rid, dim = req.get("PolicyNames") or [], req.get("ResourceId"), req.get("ScalableDimension")
        out = [dict(p) for p in sorted(self.as_policies.values(), key=lambda p: p["CreationTime"])
               if req["ServiceNamespace"] == NAMESPACE and (not names or p["PolicyName"] in names)
               and (rid is None or p["ResourceId"] == rid) and (dim is None or p["ScalableDimension"] == dim)]
        return self.as_page(out, req, "ScalingPolicies")

    def op_as_DeleteScalingPolicy(self, req):
        rid, _, _ = self.as_ids(req)
        if self.as_policies.pop((rid, req.get("PolicyName")), None) is None:
            raise ApiError("ObjectNotFoundException", f"No scaling policy found for service namespace: {NAMESPACE}, resource ID: "
                                                      f"{rid}, scalable dimension: {DIMENSION}, policy name: {req.get('PolicyName')}")
        return {}

    # ---------- scaling activities
    def op_as_DescribeScalingActivities(self, req):
        if not req.get("ServiceNamespace"):
            raise validation("ServiceNamespace is required.")
        rid, dim = req.get("ResourceId"), req.get("ScalableDimension")
        if rid is not None:
            self.as_ids(req, dimension_required=False)
        out = [dict(a) for a in self.as_activities
               if req["ServiceNamespace"] == NAMESPACE and (rid is None or a["ResourceId"] == rid)
               and (dim is None or a["ScalableDimension"] == dim)
               and (req.get("IncludeNotScaledActivities") or "NotScaledReasons" not in a)]
        return self.as_page(out, req, "ScalingActivities")

    def as_activity(self, t, description, cause, status, message, not_scaled=None):
        tnow = now()
        a = {"ActivityId": self.new_id(), "ServiceNamespace": NAMESPACE, "ResourceId": t["ResourceId"],
             "ScalableDimension": DIMENSION, "Description": description, "Cause": cause, "StartTime": tnow,
             "EndTime": tnow, "StatusCode": status, "StatusMessage": message}
        if not_scaled:
            a["NotScaledReasons"] = [not_scaled]
        self.as_activities.insert(0, a)
        del self.as_activities[ACTIVITIES_KEPT:]
        return a

    def as_scale(self, svc, t, desired, cause):
        """Sets the service's desired count, as Application Auto Scaling does through ECS."""
        self.set_desired_count(svc, desired)
        return self.as_activity(t, f"Setting desired count to {desired}.", cause, "Successful",
                                f"Successfully set desired count to {desired}. Change successfully fulfilled by ecs.")

    def set_desired_count(self, svc, desired):
        """A new desired count: the PRIMARY deployment launches or stops tasks to match it (a
        COMPLETED one launches the tasks added after it completed)."""
        old, svc["desiredCount"] = svc["desiredCount"], desired
        if svc["deployments"]:
            d = svc["deployments"][0]
            d["desiredCount"] = desired
            if d["rolloutState"] == "COMPLETED":
                d["_scale_out"] = max(0, d.get("_scale_out", 0) + desired - old)
        for ts in svc["_task_sets"]:
            if not ts["_deleting"]:
                ts["desiredCount"] = desired   # task sets scale at 100 % of the service's desired count

    def deployment_in_progress(self, svc):
        """An ECS deployment in progress: a rollout not yet COMPLETED (or older deployments still
        running next to the PRIMARY), or, for a CODE_DEPLOY service, an active CodeDeploy deployment."""
        if svc["_task_sets"]:
            key = (svc["clusterName"], svc["serviceName"])
            return any(d["_svc"] == key and d["status"] in CD_ACTIVE for d in self.cd_deployments.values()) \
                or len([ts for ts in svc["_task_sets"] if not ts["_deleting"]]) > 1
        ds = svc["deployments"]
        return bool(ds) and (ds[0]["rolloutState"] == "IN_PROGRESS" or len(ds) > 1)

    def as_trigger(self, req):
        """POST /_sim/scaling: a scaling policy's alarm (kind `dynamic`) or a scheduled action (kind
        `scheduled`) asks for a new desired count now. Returns what happened."""
        cluster, name = req.get("cluster", "default"), req.get("service")
        if not name:
            raise ValueError("missing 'service'")
        rid = f"service/{cluster}/{name}"
        t = self.as_targets.get(rid)
        svc = self.services.get((cluster, name))
        if t is None or svc is None or svc["status"] != "ACTIVE":
            raise ValueError(f"no scalable target is registered for {rid}")
        kind = req.get("kind", "dynamic")
        if kind not in ("dynamic", "scheduled"):
            raise ValueError("kind must be 'dynamic' or 'scheduled'")
        current = svc["desiredCount"]
        if req.get("desired") is not None:
            want = int(req["desired"])
            direction = req.get("direction") or ("out" if want > current else "in")
        elif req.get("direction") in ("in", "out"):
            direction = req["direction"]
            by = int(req.get("by", 1))
            want = current + by if direction == "out" else current - by
        else:
            raise ValueError("give 'desired' (a count) or 'direction' ('in' or 'out', with 'by', default 1)")
        if kind == "scheduled":
            cause = f"scheduled action name {req.get('action', 'sim-scheduled-action')} was triggered"
        else:
            policy = req.get("policy") or f"sim-scale-{direction}"
            cause = f"monitor alarm {req.get('alarm', policy)} in state ALARM triggered policy {policy}"
        result = {"scaled": False, "desiredCount": current, "reason": None, "activityId": None,
                  "cluster": cluster, "service": name, "kind": kind, "direction": direction, "requested": want,
                  "at": now()}
        suspended = "ScheduledScalingSuspended" if kind == "scheduled" else \
            ("DynamicScalingOutSuspended" if direction == "out" else "DynamicScalingInSuspended")
        if t["SuspendedState"][suspended]:
            result["reason"] = suspended          # suspended: the policy or action does not run at all
        elif direction == "in" and want < current and self.deployment_in_progress(svc):
            result["reason"] = "DeploymentInProgress"   # scale-in is off while an ECS deployment is in progress
        else:
            lo, hi = t["MinCapacity"], t["MaxCapacity"]
            new = max(lo, min(hi, want))
            if new == current:
                code = "AlreadyAtMaxCapacity" if want > current and current >= hi else \
                    "AlreadyAtMinCapacity" if want < current and current <= lo else "AlreadyAtDesiredCapacity"
                a = self.as_activity(t, f"Attempting to set desired count to {want}.", cause, "Failed",
                                     f"Failed to set desired count to {want}.",
                                     {"Code": code, "MaxCapacity": hi, "MinCapacity": lo, "CurrentCapacity": current})
                result.update(reason=code, activityId=a["ActivityId"])
            else:
                a = self.as_scale(svc, t, new, cause)
                result.update(scaled=True, desiredCount=new, activityId=a["ActivityId"])
        self.as_triggers.append(result)
        del self.as_triggers[:-ACTIVITIES_KEPT]
        return result
