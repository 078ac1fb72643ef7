"""AWS CodeDeploy for ECS blue/green (JSON 1.1, `X-Amz-Target: CodeDeploy_20141006.<Op>`), in the
same process as the ECS simulator, so a deployment moves the same service's tasks.

A service created with `deploymentController: {type: CODE_DEPLOY}` runs a task set (Blue) behind
the production listener. `CreateDeployment` with an ECS AppSpec starts a replacement task set
(Green) in the deployment group's second target group, walks the ECS lifecycle events
(BeforeInstall, Install, AfterInstall, AllowTestTraffic, AfterAllowTestTraffic,
BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic), holds in `Ready` when the group's
`deploymentReadyOption` asks for it, shifts production traffic all at once, by canary or
linearly, waits for the original task set's termination, and rolls back on failure, on an
alarm, or on `StopDeployment(autoRollbackEnabled)`. See README.md for the pages each behaviour
follows.
"""
import json
import random
import string

from .util import ApiError, digits, now

CD_PREFIX = "CodeDeploy_20141006."
LIFECYCLE = ["BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
             "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"]
# The predefined ECS deployment configurations (minutes).
PREDEFINED = {
    "CodeDeployDefault.ECSAllAtOnce": {"type": "AllAtOnce"},
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes":
        {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 1}},
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes":
        {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 3}},
    "CodeDeployDefault.ECSCanary10Percent5Minutes":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 5}},
    "CodeDeployDefault.ECSCanary10Percent15Minutes":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 15}},
}
ACTIVE = ("Created", "Queued", "InProgress", "Ready", "Baking")
# A replacement task set whose tasks fail this often fails Install (the simulator's threshold).
INSTALL_FAILURES = 3


def deployment_id():
    return "d-" + "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(9))


class CodeDeploy:
    # ---------- the ECS side: task sets of a CODE_DEPLOY service
    def cd_init(self):
        self.cd_apps = {}        # name -> application
        self.cd_groups = {}      # (app, group) -> deployment group
        self.cd_configs = {}     # custom deployment configs: name -> info
        self.cd_deployments = {}  # id -> deployment
        self.cd_knobs = {"fail_rollback": False}

    def new_task_set(self, svc, td, label, target_group):
        tid = digits(19)
        ts = {"id": f"ecs-svc/{tid}", "taskDefinition": td["taskDefinitionArn"], "desiredCount": svc["desiredCount"],
              "failedTasks": 0, "createdAt": now(), "updatedAt": now(), "status": "ACTIVE",
              "taskSetArn": self.arn("task-set", f"{svc['clusterName']}/{svc['serviceName']}/ecs-svc/{tid}"),
              "_sd": None, "_tasks": [], "_start_failures": 0, "_next_launch_at": 0.0, "_label": label,
              "_tg": target_group, "_weight": 0.0, "_deleting": False, "_stable_at": None}
        svc["_task_sets"].append(ts)
        return ts

    def task_set_shape(self, svc, ts):
        running, pending = self.counts(ts)
        out = {"id": ts["id"], "taskSetArn": ts["taskSetArn"], "serviceArn": svc["serviceArn"],
               "clusterArn": svc["clusterArn"], "startedBy": "CodeDeploy" if ts["_label"] == "Green" else "ecs",
               "status": ts["status"], "taskDefinition": ts["taskDefinition"], "computedDesiredCount": ts["desiredCount"],
               "pendingCount": pending, "runningCount": running, "createdAt": ts["createdAt"], "updatedAt": ts["updatedAt"],
               "launchType": svc.get("launchType", "FARGATE"), "scale": {"value": 100.0, "unit": "PERCENT"},
               "stabilityStatus": "STEADY_STATE" if self.ts_stable(ts) else "STABILIZING",
               "loadBalancers": [dict(lb, targetGroupArn=ts["_tg"]) for lb in svc.get("loadBalancers") or []]}
        if ts["_stable_at"]:
            out["stabilityStatusAt"] = ts["_stable_at"]
        return out

    def ts_stable(self, ts):
        return not ts["_deleting"] and self.up_count(ts) >= ts["desiredCount"]

    def tick_task_sets(self, svc, tnow):
        for ts in list(svc["_task_sets"]):
            for t in list(ts["_tasks"]):
                self.tick_task(svc, ts, t, tnow)
            if ts["_deleting"]:
                for t in self.unstopping(ts):
                    self.schedule_stop(svc, t, f"Task set {ts['id']} deleted by CodeDeploy")
                if not self.live_tasks(ts):
                    svc["_task_sets"].remove(ts)
                continue
            if tnow >= ts["_next_launch_at"]:
                for _ in range(max(0, ts["desiredCount"] - len(self.unstopping(ts)))):
                    self.launch(svc, ts)
            self.stop_excess(svc, ts, ts["desiredCount"])
            stable = self.ts_stable(ts)
            if stable and ts["_stable_at"] is None:
                ts["_stable_at"] = tnow
            elif not stable:
                ts["_stable_at"] = None
        primary = next((ts for ts in svc["_task_sets"] if ts["status"] == "PRIMARY"), None)
        if primary:
            svc["taskDefinition"] = primary["taskDefinition"]

    def cd_serving(self, svc, listener):
        """The task set(s) a listener sends traffic to: the test listener to one, production by weight."""
        sets = [ts for ts in svc["_task_sets"] if not ts["_deleting"]]
        if listener == "test":
            chosen = next((ts for ts in sets if ts.get("_test")), None) or \
                next((ts for ts in sets if ts["status"] == "PRIMARY"), None)
        else:
            self.rr[(svc["serviceArn"], "weight")] += 1
            n = self.rr[(svc["serviceArn"], "weight")]
            green = next((ts for ts in sets if ts["_label"] == "Green" and ts["_weight"] > 0), None)
            blue = next((ts for ts in sets if ts is not green and ts["_weight"] > 0), None)
            chosen = blue
            if green is not None:
                w = green["_weight"]
                # A deterministic weighted round robin: green gets w% of the requests.
                chosen = green if int(n * w / 100) != int((n - 1) * w / 100) or blue is None else blue
        if chosen is None:
            return []
        return [t for t in chosen["_tasks"] if t["lastStatus"] == "RUNNING" and t["_target"] == "healthy"]

    # ---------- applications, groups, configs
    def cd_app(self, name):
        if not name:
            raise ApiError("ApplicationNameRequiredException", "The minimum number of required application names was not specified.")
        app = self.cd_apps.get(name)
        if app is None:
            raise ApiError("ApplicationDoesNotExistException", f"No application found for name: {name}")
        return app

    def cd_group(self, app, name):
        self.cd_app(app)
        if not name:
            raise ApiError("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
        g = self.cd_groups.get((app, name))
        if g is None:
            raise ApiError("DeploymentGroupDoesNotExistException", f"No Deployment Group found for name: {name}")
        return g

    def cd_config(self, name):
        if name in PREDEFINED:
            return {"deploymentConfigName": name, "deploymentConfigId": name, "computePlatform": "ECS",
                    "createTime": 1500000000, "trafficRoutingConfig": PREDEFINED[name]}
        c = self.cd_configs.get(name)
        if c is None:
            raise ApiError("DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {name}")
        return c

    def op_cd_CreateApplication(self, req):
        name = req.get("applicationName")
        if not name:
            raise ApiError("ApplicationNameRequiredException", "The minimum number of required application names was not specified.")
        if name in self.cd_apps:
            raise ApiError("ApplicationAlreadyExistsException", f"The application {name} already exists.")
        if req.get("computePlatform", "Server") != "ECS":
            raise ApiError("InvalidComputePlatformException", "The simulator supports computePlatform ECS only.")
        self.cd_apps[name] = {"applicationId": self.new_id(), "applicationName": name, "createTime": now(),
                              "linkedToGitHub": False, "computePlatform": "ECS"}
        return {"applicationId": self.cd_apps[name]["applicationId"]}

    def op_cd_CreateDeploymentConfig(self, req):
        name = req.get("deploymentConfigName")
        if not name:
            raise ApiError("DeploymentConfigNameRequiredException", "Deployment config name is required.")
        if name in self.cd_configs or name in PREDEFINED:
            raise ApiError("DeploymentConfigAlreadyExistsException", f"The deployment config {name} already exists.")
        trc = req.get("trafficRoutingConfig") or {"type": "AllAtOnce"}
        if trc.get("type") not in ("AllAtOnce", "TimeBasedCanary", "TimeBasedLinear"):
            raise ApiError("InvalidTrafficRoutingConfigurationException", "Unknown traffic routing type.")
        self.cd_configs[name] = {"deploymentConfigId": self.new_id(), "deploymentConfigName": name,
                                 "computePlatform": req.get("computePlatform", "ECS"), "createTime": now(),
                                 "trafficRoutingConfig": trc}
        return {"deploymentConfigId": self.cd_configs[name]["deploymentConfigId"]}

    def op_cd_GetDeploymentConfig(self, req):
        return {"deploymentConfigInfo": dict(self.cd_config(req.get("deploymentConfigName")))}

    def op_cd_CreateDeploymentGroup(self, req):
        app = self.cd_app(req.get("applicationName"))
        name = req.get("deploymentGroupName")
        if not name:
            raise ApiError("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
        if (app["applicationName"], name) in self.cd_groups:
            raise ApiError("DeploymentGroupAlreadyExistsException", f"The deployment group {name} already exists.")
        if not req.get("serviceRoleArn"):
            raise ApiError("RoleRequiredException", "The service role ARN was not specified.")
        self.cd_config(req.get("deploymentConfigName") or "CodeDeployDefault.ECSAllAtOnce")
        services = req.get("ecsServices") or []
        for s in services:
            svc = self.services.get((s.get("clusterName"), s.get("serviceName")))
            if svc is None or svc["deploymentController"].get("type") != "CODE_DEPLOY":
                raise ApiError("InvalidECSServiceException",
                               f"ECS service {s.get('clusterName')}/{s.get('serviceName')} does not exist or does not use the CODE_DEPLOY deployment controller.")
        pairs = (req.get("loadBalancerInfo") or {}).get("targetGroupPairInfoList") or []
        if len(pairs) != 1 or len(pairs[0].get("targetGroups") or []) != 2 or not (pairs[0].get("prodTrafficRoute") or {}).get("listenerArns"):
            raise ApiError("InvalidTargetGroupPairException",
                           "An ECS deployment group needs one target group pair: two target groups and a production listener.")
        g = {k: v for k, v in req.items() if k not in ("tags",)}
        g.update(deploymentGroupId=self.new_id(), computePlatform="ECS",
                 deploymentConfigName=req.get("deploymentConfigName") or "CodeDeployDefault.ECSAllAtOnce",
                 deploymentStyle=req.get("deploymentStyle") or {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"})
        self.cd_groups[(app["applicationName"], name)] = g
        return {"deploymentGroupId": g["deploymentGroupId"]}

    def op_cd_GetApplication(self, req):
        return {"application": dict(self.cd_app(req.get("applicationName")))}

    def op_cd_BatchGetApplications(self, req):
        names = req.get("applicationNames") or []
        if not names:
            raise ApiError("ApplicationNameRequiredException", "The minimum number of required application names was not specified.")
        return {"applicationsInfo": [dict(self.cd_app(n)) for n in names]}

    def op_cd_ListApplications(self, req):
        return {"applications": sorted(self.cd_apps)}

    def op_cd_ListDeploymentGroups(self, req):
        app = self.cd_app(req.get("applicationName"))
        return {"applicationName": app["applicationName"],
                "deploymentGroups": sorted(n for (a, n) in self.cd_groups if a == app["applicationName"])}

    def group_info(self, g):
        out = dict(g)
        last = [d for d in self.cd_deployments.values()
                if (d["applicationName"], d["deploymentGroupName"]) == (g["applicationName"], g["deploymentGroupName"])]
        if last:
            d = max(last, key=lambda d: d["createTime"])
            out["lastAttemptedDeployment"] = {"deploymentId": d["deploymentId"], "status": d["status"], "createTime": d["createTime"]}
        return out

    def op_cd_BatchGetDeploymentGroups(self, req):
        app = self.cd_app(req.get("applicationName"))
        out, missing = [], []
        for n in req.get("deploymentGroupNames") or []:
            g = self.cd_groups.get((app["applicationName"], n))
            (out.append(self.group_info(g)) if g else missing.append(n))
        res = {"deploymentGroupsInfo": out}
        if missing:
            res["errorMessage"] = "Deployment groups not found: " + ", ".join(missing)
        return res

    def op_cd_GetDeploymentGroup(self, req):
        return {"deploymentGroupInfo": self.group_info(self.cd_group(req.get("applicationName"), req.get("deploymentGroupName")))}

    # ---------- deployments
    def cd_deployment(self, dep_id):
        if not dep_id:
            raise ApiError("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
        d = self.cd_deployments.get(dep_id)
        if d is None:
            raise ApiError("DeploymentDoesNotExistException", f"The deployment {dep_id} could not be found.")
        return d

    def parse_appspec(self, revision):
        if (revision or {}).get("revisionType") != "AppSpecContent":
            raise ApiError("InvalidRevisionException", "The simulator takes revisionType AppSpecContent only.")
        content = (revision.get("appSpecContent") or {}).get("content") or ""

        def key(obj, name):   # AppSpec keys are matched without regard to case, as the AWS CLI does
            return next(v for k, v in obj.items() if k.lower() == name.lower())

        try:
            spec = json.loads(content)
            resource = key(spec, "Resources")[0]
            props = key(next(iter(resource.values())), "Properties")   # the resource's name is free
            lb = key(props, "LoadBalancerInfo")
            hooks = next((v for k, v in spec.items() if k.lower() == "hooks"), None) or []
            return dict(spec, Hooks=hooks), key(props, "TaskDefinition"), key(lb, "ContainerName"), \
                int(key(lb, "ContainerPort"))
        except (ValueError, KeyError, IndexError, TypeError, StopIteration, AttributeError) as e:
            raise ApiError("InvalidRevisionException",
                           f"The AppSpec is not an ECS AppSpec the simulator reads (JSON with Resources[0].<name>."
                           f"Properties.TaskDefinition and LoadBalancerInfo): {e!r}")

    def op_cd_CreateDeployment(self, req):
        g = self.cd_group(req.get("applicationName"), req.get("deploymentGroupName"))
        if not req.get("revision"):
            raise ApiError("RevisionRequiredException", "The revision ID was not specified.")
        spec, td_ref, container, port = self.parse_appspec(req["revision"])
        svc_ref = (g.get("ecsServices") or [{}])[0]
        svc = self.services.get((svc_ref.get("clusterName"), svc_ref.get("serviceName")))
        if svc is None:
            raise ApiError("InvalidECSServiceException", "The deployment group's ECS service does not exist.")
        try:
            td = self.task_definition(td_ref)
        except ApiError:
            raise ApiError("InvalidRevisionException", f"The task definition {td_ref} does not exist.")
        lb = (svc.get("loadBalancers") or [{}])[0]
        if (lb.get("containerName"), lb.get("containerPort")) != (container, port):
            raise ApiError("InvalidRevisionException",
                           f"The AppSpec's LoadBalancerInfo ({container}:{port}) does not match the service's load balancer "
                           f"({lb.get('containerName')}:{lb.get('containerPort')}).")
        if container not in {c.get("name") for c in td["containerDefinitions"]}:
            raise ApiError("InvalidRevisionException", f"The container {container} is not in {td_ref}.")
        for d in self.cd_deployments.values():
            if d["deploymentGroupName"] == g["deploymentGroupName"] and d["applicationName"] == g["applicationName"] \
                    and d["status"] in ACTIVE:
                raise ApiError("DeploymentLimitExceededException",
                               f"The Deployment Group '{g['deploymentGroupName']}' already has an active Deployment '{d['deploymentId']}'")
        config = req.get("deploymentConfigName") or g["deploymentConfigName"]
        self.cd_config(config)
        d = self.new_cd_deployment(g, svc, config, creator="user", revision=req["revision"], td=td,
                                   hooks=spec.get("Hooks") or [], description=req.get("description"))
        return {"deploymentId": d["deploymentId"]}

    def new_cd_deployment(self, g, svc, config, creator, revision=None, td=None, hooks=(), description=None):
        dep_id = deployment_id()
        d = {"applicationName": g["applicationName"], "deploymentGroupName": g["deploymentGroupName"],
             "deploymentConfigName": config, "deploymentId": dep_id, "status": "Created", "createTime": now(),
             "creator": creator, "computePlatform": "ECS",
             "deploymentStyle": g["deploymentStyle"], "loadBalancerInfo": g["loadBalancerInfo"],
             "blueGreenDeploymentConfiguration": g.get("blueGreenDeploymentConfiguration") or {},
             "autoRollbackConfiguration": g.get("autoRollbackConfiguration") or {"enabled": False},
             "instanceTerminationWaitTimeStarted": False,
             "_svc": (svc["clusterName"], svc["serviceName"]), "_td": td, "_events": [], "_step": "start",
             "_due": now() + self.t("pending_seconds"), "_hooks": {k: v for h in hooks for k, v in h.items()},
             "_blue": None, "_green": None, "_shift_at": None, "_ready_until": None, "_terminate_at": None}
        if revision:
            d["revision"] = revision
        if description:
            d["description"] = description
        d["_events"] = [{"lifecycleEventName": n, "status": "Pending"} for n in LIFECYCLE]
        self.cd_deployments[dep_id] = d
        return d

    def cd_shape(self, d):
        out = {k: v for k, v in d.items() if not k.startswith("_")}
        events = d["_events"]
        overview = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0}
        overview[{"Created": "Pending", "Queued": "Pending", "InProgress": "InProgress", "Baking": "InProgress",
                  "Ready": "Ready", "Succeeded": "Succeeded", "Failed": "Failed", "Stopped": "Failed"}[d["status"]]] = 1
        out["deploymentOverview"] = overview
        if events and d["status"] == "Failed" and "errorInformation" not in out:
            out["errorInformation"] = {"code": "INTERNAL_ERROR", "message": "The deployment failed."}
        return out

    def op_cd_GetDeployment(self, req):
        return {"deploymentInfo": self.cd_shape(self.cd_deployment(req.get("deploymentId")))}

    def op_cd_ListDeployments(self, req):
        statuses = req.get("includeOnlyStatuses")
        out = [d for d in self.cd_deployments.values()
               if (not req.get("applicationName") or d["applicationName"] == req["applicationName"])
               and (not req.get("deploymentGroupName") or d["deploymentGroupName"] == req["deploymentGroupName"])
               and (not statuses or d["status"] in statuses)]
        return {"deployments": [d["deploymentId"] for d in sorted(out, key=lambda d: d["createTime"], reverse=True)]}

    def target_id(self, d):
        return f"{d['_svc'][0]}:{d['_svc'][1]}"

    def op_cd_ListDeploymentTargets(self, req):
        d = self.cd_deployment(req.get("deploymentId"))
        if d["status"] == "Created":
            raise ApiError("DeploymentNotStartedException", "The specified deployment has not started.")
        return {"targetIds": [self.target_id(d)]}

    def op_cd_GetDeploymentTarget(self, req):
        d = self.cd_deployment(req.get("deploymentId"))
        if d["status"] == "Created":
            raise ApiError("DeploymentNotStartedException", "The specified deployment has not started.")
        if not req.get("targetId"):
            raise ApiError("DeploymentTargetIdRequiredException", "A deployment target ID was not provided.")
        if req["targetId"] != self.target_id(d):
            raise ApiError("DeploymentTargetDoesNotExistException", "The provided target ID does not belong to the deployment.")
        svc = self.services[d["_svc"]]
        infos = []
        for ts in (self.find_ts(svc, d["_blue"]), self.find_ts(svc, d["_green"])):
            if ts is None:
                continue
            running, pending = self.counts(ts)
            infos.append({"identifer": ts["id"], "desiredCount": ts["desiredCount"], "pendingCount": pending,
                          "runningCount": running, "status": ts["status"], "trafficWeight": float(ts["_weight"]),
                          "targetGroup": {"name": ts["_tg"].split(":targetgroup/")[-1].split("/")[0]},
                          "taskSetLabel": ts["_label"]})
        status = {"Created": "Pending", "Queued": "Pending", "Baking": "InProgress", "Stopped": "Failed"}.get(d["status"], d["status"])
        target = {"deploymentId": d["deploymentId"], "targetId": self.target_id(d), "targetArn": svc["serviceArn"],
                  "lastUpdatedAt": now(), "status": status, "lifecycleEvents": [dict(e) for e in d["_events"]],
                  "taskSetsInfo": infos}
        return {"deploymentTarget": {"deploymentTargetType": "ECSTarget", "ecsTarget": target}}

    def op_cd_ContinueDeployment(self, req):
        d = self.cd_deployment(req.get("deploymentId"))
        wait = req.get("deploymentWaitType", "READY_WAIT")
        if wait not in ("READY_WAIT", "TERMINATION_WAIT"):
            raise ApiError("InvalidDeploymentWaitTypeException", f"Invalid deployment wait type {wait}.")
        if d["status"] not in ACTIVE:
            raise ApiError("DeploymentAlreadyCompletedException", f"The deployment {d['deploymentId']} has already completed.")
        if wait == "READY_WAIT":
            if d["status"] != "Ready":
                raise ApiError("DeploymentIsNotInReadyStateException", f"The deployment {d['deploymentId']} is not in the Ready state.")
            d["status"] = "InProgress"
            d["_ready_until"] = now()
        else:
            if d["_step"] != "terminate":
                raise ApiError("DeploymentIsNotInReadyStateException",
                               f"The deployment {d['deploymentId']} is not waiting for the original task set's termination.")
            d["_terminate_at"] = now()
        return {}

    def op_cd_StopDeployment(self, req):
        d = self.cd_deployment(req.get("deploymentId"))
        if d["status"] not in ACTIVE:
            raise ApiError("DeploymentAlreadyCompletedException", f"The deployment {d['deploymentId']} has already completed.")
        rollback = bool(req.get("autoRollbackEnabled"))
        self.cd_end(d, "Stopped", "MANUAL_STOP", "Deployment was manually stopped." +
                    (" Rolling back." if rollback else ""), rollback=rollback)
        return {"status": "Pending", "statusMessage": "Stopping Pending. Stopping to schedule commands in the deployment instances"}

    # ---------- the clock
    def find_ts(self, svc, ts_id):
        return next((ts for ts in svc["_task_sets"] if ts["id"] == ts_id), None)

    def event_status(self, d, name, status, diagnostics=None):
        for e in d["_events"]:
            if e["lifecycleEventName"] == name:
                e["status"] = status
                if status == "InProgress":
                    e["startTime"] = now()
                elif status in ("Succeeded", "Failed", "Skipped"):
                    e.setdefault("startTime", now())
                    e["endTime"] = now()
                if diagnostics:
                    e["diagnostics"] = diagnostics

    def tick_codedeploy(self, tnow):
        for d in list(self.cd_deployments.values()):
            if d["status"] in ACTIVE and tnow >= d["_due"]:
                svc = self.services.get(d["_svc"])
                if svc is None or svc["status"] != "ACTIVE":
                    self.cd_end(d, "Failed", "INVALID_ECS_SERVICE", "The ECS service no longer exists.")
                elif d["creator"] == "codeDeployRollback":
                    self.tick_rollback(svc, d, tnow)
                else:
                    self.tick_deployment(svc, d, tnow)

    def hook_event(self, d, name, nxt):
        """A lifecycle event without work of its own: its hook (a Lambda named in the AppSpec) is
        reported as run and succeeded; with no hook it succeeds at once."""
        self.event_status(d, name, "Succeeded")
        d["_step"] = nxt
        d["_due"] = now() + (self.t("pending_seconds") if d["_hooks"].get(name) else 0)

    def tick_deployment(self, svc, d, tnow):
        step, g = d["_step"], self.cd_groups[(d["applicationName"], d["deploymentGroupName"])]
        tgs = [t["name"] for t in d["loadBalancerInfo"]["targetGroupPairInfoList"][0]["targetGroups"]]
        if step == "start":
            d.update(status="InProgress", startTime=tnow)
            blue = next((ts for ts in svc["_task_sets"] if ts["status"] == "PRIMARY"), None)
            d["_blue"] = blue["id"] if blue else None
            self.hook_event(d, "BeforeInstall", "install")
        elif step == "install":
            blue = self.find_ts(svc, d["_blue"])
            green_tg = next((t for t in tgs if blue is None or t not in blue["_tg"]), tgs[-1])
            green = self.new_task_set(svc, d["_td"], "Green", self.tg_arn(green_tg))
            d["_green"] = green["id"]
            self.event_status(d, "Install", "InProgress")
            d["_step"] = "installing"
        elif step == "installing":
            green = self.find_ts(svc, d["_green"])
            if green["failedTasks"] >= INSTALL_FAILURES:
                msg = (f"The ECS replacement task set {green['id']} did not reach a steady state: {green['failedTasks']} "
                       f"task(s) failed to start or failed health checks.")
                self.event_status(d, "Install", "Failed", {"errorCode": "UnknownError", "scriptName": "", "message": msg,
                                                            "logTail": ""})
                self.cd_end(d, "Failed", "ECS_UPDATE_ERROR", msg, rollback=self.rolls_back(d, "DEPLOYMENT_FAILURE"))
            elif self.ts_stable(green):
                self.hook_event(d, "Install", "after_install")
        elif step == "after_install":
            self.hook_event(d, "AfterInstall", "allow_test")
        elif step == "allow_test":
            for ts in svc["_task_sets"]:
                ts["_test"] = ts["id"] == d["_green"]
            self.hook_event(d, "AllowTestTraffic", "after_test")
        elif step == "after_test":
            self.hook_event(d, "AfterAllowTestTraffic", "ready")
            ready = (d["blueGreenDeploymentConfiguration"].get("deploymentReadyOption") or {})
            wait = float(ready.get("waitTimeInMinutes") or 0) * self.t("codedeploy_minute_seconds")
            if ready.get("actionOnTimeout") == "STOP_DEPLOYMENT" or wait > 0:
                d.update(status="Ready", _ready_until=tnow + wait, _ready_action=ready.get("actionOnTimeout", "CONTINUE_DEPLOYMENT"))
        elif step == "ready":
            if d["status"] == "Ready":
                if tnow < d["_ready_until"]:
                    return
                if d["_ready_action"] == "STOP_DEPLOYMENT":
                    self.cd_end(d, "Stopped", "TIMEOUT",
                                "The deployment timed out while waiting for traffic to be rerouted (ContinueDeployment was not called).",
                                rollback=True)
                    return
                d["status"] = "InProgress"
            self.hook_event(d, "BeforeAllowTraffic", "shift")
        elif step == "shift":
            self.event_status(d, "AllowTraffic", "InProgress")
            d.update(_step="shifting", _shift_at=tnow)
            self.shift(svc, d, tnow)
        elif step == "shifting":
            if self.alarm_fired(g):
                names = ", ".join(self.alarm_fired(g))
                self.event_status(d, "AllowTraffic", "Failed", {"errorCode": "UnknownError", "scriptName": "",
                                                                 "message": f"Alarm(s) in ALARM state: {names}", "logTail": ""})
                self.cd_end(d, "Stopped", "ALARM_ACTIVE",
                            f"One or more alarms have been activated according to the Amazon CloudWatch metrics you selected, "
                            f"and the affected deployments have been stopped. Activated alarms: <{names}>",
                            rollback=self.rolls_back(d, "DEPLOYMENT_STOP_ON_ALARM"))
                return
            self.shift(svc, d, tnow)
        elif step == "after_allow":
            self.hook_event(d, "AfterAllowTraffic", "terminate")
            term = d["blueGreenDeploymentConfiguration"].get("terminateBlueInstancesOnDeploymentSuccess") or {}
            minutes = float(term.get("terminationWaitTimeInMinutes") or 0)
            d["_terminate_at"] = tnow + minutes * self.t("codedeploy_minute_seconds")
            d["instanceTerminationWaitTimeStarted"] = True
        elif step == "terminate":
            if tnow < d["_terminate_at"]:
                return
            blue = self.find_ts(svc, d["_blue"])
            if blue is not None:
                blue["_deleting"] = True
            self.cd_end(d, "Succeeded")

    def shift(self, svc, d, tnow):
        """Moves production traffic to the replacement task set as the deployment config says."""
        blue, green = self.find_ts(svc, d["_blue"]), self.find_ts(svc, d["_green"])
        trc = self.cd_config(d["deploymentConfigName"])["trafficRoutingConfig"]
        minute = self.t("codedeploy_minute_seconds")
        elapsed = tnow - d["_shift_at"]
        if trc["type"] == "TimeBasedCanary":
            c = trc["timeBasedCanary"]
            weight = 100.0 if elapsed >= float(c["canaryInterval"]) * minute else float(c["canaryPercentage"])
        elif trc["type"] == "TimeBasedLinear":
            c = trc["timeBasedLinear"]
            steps = 1 + int(elapsed // (float(c["linearInterval"]) * minute))
            weight = min(100.0, steps * float(c["linearPercentage"]))
        else:
            weight = 100.0
        green["_weight"] = weight
        d["_max_weight"] = max(d.get("_max_weight", 0.0), weight)
        if blue is not None:
            blue["_weight"] = 100.0 - weight
        if weight >= 100.0:
            green.update(status="PRIMARY", updatedAt=tnow)
            if blue is not None:
                blue.update(status="ACTIVE", updatedAt=tnow)
            svc["taskDefinition"] = green["taskDefinition"]
            self.hook_event(d, "AllowTraffic", "after_allow")

    def alarm_fired(self, g):
        cfg = g.get("alarmConfiguration") or {}
        if not cfg.get("enabled"):
            return []
        return [a["name"] for a in cfg.get("alarms") or [] if self.alarms.get(a.get("name")) == "ALARM"]

    def rolls_back(self, d, event):
        cfg = d["autoRollbackConfiguration"]
        return bool(cfg.get("enabled")) and event in (cfg.get("events") or [])

    def tg_arn(self, name):
        return f"arn:aws:elasticloadbalancing:{self.region}:{self.account}:targetgroup/{name}/{digits(16)}"

    def cd_end(self, d, status, code=None, message=None, rollback=False):
        tnow = now()
        d.update(status=status, completeTime=tnow)
        if code:
            d["errorInformation"] = {"code": code, "message": message}
        for e in d["_events"]:
            if e["status"] == "InProgress":
                e.update(status="Failed" if status != "Succeeded" else "Succeeded", endTime=tnow)
        svc = self.services.get(d["_svc"])
        if status == "Succeeded" or svc is None or d["creator"] == "codeDeployRollback":
            return
        g = self.cd_groups[(d["applicationName"], d["deploymentGroupName"])]
        if rollback and d["_green"] is not None:
            r = self.new_cd_deployment(g, svc, d["deploymentConfigName"], creator="codeDeployRollback",
                                       revision=d.get("revision"), td=d["_td"])
            r.update(_blue=d["_blue"], _green=d["_green"], _step="rollback",
                     rollbackInfo={"rollbackTriggeringDeploymentId": d["deploymentId"]})
            d["rollbackInfo"] = {"rollbackDeploymentId": r["deploymentId"],
                                 "rollbackMessage": f"Deployment {d['deploymentId']} rolled back by deployment {r['deploymentId']}."}
        elif (self.find_ts(svc, d["_green"]) or {}).get("_weight") == 0:
            # Production never reached the replacement: it is removed, the original keeps serving.
            self.restore(svc, d)

    def restore(self, svc, d):
        blue, green = self.find_ts(svc, d["_blue"]), self.find_ts(svc, d["_green"])
        if blue is not None:
            blue.update(status="PRIMARY", _weight=100.0, _test=True, updatedAt=now())
            svc["taskDefinition"] = blue["taskDefinition"]
        if green is not None:
            green.update(_deleting=True, _weight=0.0, _test=False, status="ACTIVE")

    def tick_rollback(self, svc, d, tnow):
        """A rollback deployment: traffic back to the original task set, the replacement removed."""
        if d["_step"] == "rollback":
            d.update(status="InProgress", startTime=tnow, _step="rolling_back", _due=tnow + self.t("pending_seconds"))
            for e in d["_events"]:
                e.update(status="InProgress" if e["lifecycleEventName"] == "AllowTraffic" else "Skipped")
                if e["status"] == "InProgress":
                    e["startTime"] = tnow
            return
        if self.cd_knobs.get("fail_rollback"):
            self.event_status(d, "AllowTraffic", "Failed", {"errorCode": "UnknownError", "scriptName": "",
                                                             "message": "Failed to reroute traffic to the original task set.",
                                                             "logTail": ""})
            self.cd_end(d, "Failed", "ECS_UPDATE_ERROR",
                        "The rollback failed: traffic could not be rerouted to the original task set.")
            return
        self.restore(svc, d)
        self.event_status(d, "AllowTraffic", "Succeeded")
        self.cd_end(d, "Succeeded")
