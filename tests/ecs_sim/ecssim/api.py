"""The ECS operations the simulator answers (awsJson1_1), and what comes before them: request
throttling (token buckets), denied operations (AccessDeniedException), injected faults, and
eventual consistency (reads of a service answer its state from before an UpdateService for
the service's read lag)."""
import copy
import time

from .util import ApiError, now

# The method prefix of each service's operations.
HANDLER_PREFIX = {"ecs": "op_", "codedeploy": "op_cd_", "application-autoscaling": "op_as_"}


class Api:
    def op(self, name, req, service="ecs"):
        # ECS operations by name, the others as `codedeploy:Name`, `application-autoscaling:Name` (GET /_sim/calls).
        op = name if service == "ecs" else f"{service}:{name}"
        self.calls[op] += 1
        # GET /_sim/log: the calls of every region in order; a read that names several resources
        # at once (DescribeServices, DescribeServiceDeployments) logs how many.
        items = req.get("services") if name == "DescribeServices" else (
            req.get("serviceDeploymentArns") if name == "DescribeServiceDeployments" else None)
        self.call_log.append((time.monotonic(), op, self.region, len(items) if isinstance(items, list) else None))
        bucket = self.throttles.get(name)
        if bucket is not None and not bucket.take():
            raise ApiError("ThrottlingException", "Rate exceeded")
        if name in self.denied:
            raise self.access_denied(name, req, service)
        fault = self.faults.get(name)
        if fault and fault[1] > 0:
            fault[1] -= 1
            raise ApiError(fault[0], "Rate exceeded" if fault[0] == "ThrottlingException" else "Injected fault")
        handler = getattr(self, HANDLER_PREFIX[service] + name, None)
        if handler is None:
            raise ApiError("UnknownOperationException", f"The simulator does not implement {name}.")
        with self.lock:
            return handler(req)

    def access_denied(self, name, req, service="ecs"):
        resource = (req.get("serviceDeploymentArns") or req.get("serviceRevisionArns") or [None])[0] \
            or req.get("serviceDeploymentArn") or req.get("service") or req.get("ResourceARN") or req.get("ResourceId") or "*"
        return ApiError("AccessDeniedException",
                        f"User: arn:aws:sts::{self.account}:assumed-role/deploy/ferry is not authorized to perform: "
                        f"{service}:{name} on resource: {resource} because no identity-based policy allows the "
                        f"{service}:{name} action")

    # ---------- eventual consistency
    def remember_before_update(self, svc):
        """Reads of this service answer its current state until `lag` seconds after the update."""
        lag = self.lag_seconds(svc)
        if lag <= 0:
            return
        snap = self.stale(svc)
        if snap is None:
            snap = {"service": self.service_shape(svc),
                    "sds": {a: self.sd_shape(sd) for a, sd in self.service_deployments.items()
                            if sd["serviceArn"] == svc["serviceArn"]},
                    "revisions": {a for a, r in self.revisions.items() if r["serviceArn"] == svc["serviceArn"]}}
        snap["until"] = now() + lag
        svc["_stale"] = snap

    def stale(self, svc):
        snap = svc.get("_stale")
        return snap if snap is not None and now() < snap["until"] else None

    def stale_for_arn(self, service_arn):
        svc = next((s for s in self.services.values() if s["serviceArn"] == service_arn), None)
        return self.stale(svc) if svc else None

    # ---------- clusters and task definitions
    def op_CreateCluster(self, req):
        name = req.get("clusterName", "default")
        c = self.clusters.setdefault(name, {"clusterArn": self.arn("cluster", name), "clusterName": name,
                                            "status": "ACTIVE", "registeredContainerInstancesCount": 0,
                                            "runningTasksCount": 0, "pendingTasksCount": 0, "activeServicesCount": 0,
                                            "tags": req.get("tags") or []})
        return {"cluster": c}

    def op_DescribeClusters(self, req):
        out, failures = [], []
        for ref in req.get("clusters") or ["default"]:
            c = None if self.foreign(ref) else self.clusters.get(ref.split("/")[-1])
            if c:
                out.append(c)
            else:
                failures.append({"arn": ref, "reason": "MISSING"})
        return {"clusters": out, "failures": failures}

    def op_RegisterTaskDefinition(self, req):
        family = req.get("family")
        if not family or not req.get("containerDefinitions"):
            raise ApiError("ClientException", "Family and containerDefinitions are required.")
        revs = self.families.setdefault(family, [])
        rev = len(revs) + 1
        td = {k: v for k, v in req.items() if k != "tags"}
        td.update({
            "taskDefinitionArn": self.arn("task-definition", f"{family}:{rev}"),
            "revision": rev, "status": "ACTIVE", "requiresAttributes": [],
            "compatibilities": sorted(set(["EC2"] + (req.get("requiresCompatibilities") or []))),
            "registeredAt": now(), "registeredBy": f"arn:aws:iam::{self.account}:user/ferry-sim",
        })
        revs.append(td)
        self.td_tags[td["taskDefinitionArn"]] = list(req.get("tags") or [])
        out = {"taskDefinition": td}
        if req.get("tags"):
            out["tags"] = self.td_tags[td["taskDefinitionArn"]]
        return out

    def op_DescribeTaskDefinition(self, req):
        td = self.task_definition(req.get("taskDefinition"))
        out = {"taskDefinition": td}
        if "TAGS" in (req.get("include") or []):
            out["tags"] = self.td_tags.get(td["taskDefinitionArn"], [])
        return out

    def op_ListTaskDefinitions(self, req):
        prefix, status = req.get("familyPrefix"), req.get("status", "ACTIVE")
        arns = [td["taskDefinitionArn"] for fam, revs in sorted(self.families.items())
                if prefix is None or fam == prefix for td in revs if status == "ALL" or td["status"] == status]
        if req.get("sort") == "DESC":
            arns.reverse()
        return {"taskDefinitionArns": arns}

    def op_DeregisterTaskDefinition(self, req):
        td = self.task_definition(req.get("taskDefinition"))
        td.update(status="INACTIVE", deregisteredAt=now())
        return {"taskDefinition": td}

    def op_ListTagsForResource(self, req):
        arn = req.get("resourceArn", "")
        if arn in self.td_tags:
            return {"tags": self.td_tags[arn]}
        for s in self.services.values():
            if s["serviceArn"] == arn:
                return {"tags": s.get("tags", [])}
        raise ApiError("InvalidParameterException", "The specified resource could not be found.")

    def op_TagResource(self, req):
        arn = req.get("resourceArn", "")
        if arn not in self.td_tags:
            raise ApiError("InvalidParameterException", "The specified resource could not be found.")
        tags = {t["key"]: t for t in self.td_tags[arn]}
        for t in req.get("tags") or []:
            tags[t["key"]] = t
        self.td_tags[arn] = list(tags.values())
        return {}

    # ---------- services
    def check_load_balancers(self, lbs, td):
        names = {c.get("name") for c in td["containerDefinitions"]}
        for lb in lbs:
            if not (lb.get("targetGroupArn") or lb.get("loadBalancerName")) or lb.get("containerPort") is None:
                raise ApiError("InvalidParameterException", "A load balancer needs a targetGroupArn, a containerName and a containerPort.")
            if lb.get("containerName") not in names:
                raise ApiError("InvalidParameterException",
                               f"The container {lb.get('containerName')} does not exist in the task definition.")

    def op_CreateService(self, req):
        c = self.cluster(req.get("cluster"))
        name = req.get("serviceName")
        if not name:
            raise ApiError("InvalidParameterException", "serviceName is required.")
        existing = self.services.get((c["clusterName"], name))
        if existing and existing["status"] == "ACTIVE":
            raise ApiError("InvalidParameterException", "Creation of service was not idempotent.")
        td = self.task_definition(req.get("taskDefinition"))
        lbs = copy.deepcopy(req.get("loadBalancers") or [])
        self.check_load_balancers(lbs, td)
        if (req.get("deploymentController") or {}).get("type") == "CODE_DEPLOY" and not lbs:
            raise ApiError("InvalidParameterException",
                           "A service with the CODE_DEPLOY deployment controller needs a load balancer.")
        dc = {"maximumPercent": 200, "minimumHealthyPercent": 100,
              "deploymentCircuitBreaker": {"enable": False, "rollback": False}}
        dc.update(copy.deepcopy(req.get("deploymentConfiguration") or {}))
        svc = {
            "serviceArn": self.arn("service", f"{c['clusterName']}/{name}"), "serviceName": name,
            "clusterArn": c["clusterArn"], "clusterName": c["clusterName"], "status": "ACTIVE",
            "desiredCount": req.get("desiredCount", 1), "taskDefinition": td["taskDefinitionArn"],
            "deploymentConfiguration": dc, "deployments": [], "events": [], "createdAt": now(),
            "createdBy": f"arn:aws:iam::{self.account}:user/ferry-sim", "loadBalancers": lbs, "serviceRegistries": [],
            "networkConfiguration": req.get("networkConfiguration"), "schedulingStrategy": "REPLICA",
            "deploymentController": req.get("deploymentController") or {"type": "ECS"}, "enableECSManagedTags": False,
            "propagateTags": "NONE", "enableExecuteCommand": False, "tags": req.get("tags") or [],
            "healthCheckGracePeriodSeconds": req.get("healthCheckGracePeriodSeconds"),
            "_quiet": {}, "_last_completed": None, "_stale": None, "_task_sets": [],
        }
        if req.get("capacityProviderStrategy"):
            svc["capacityProviderStrategy"] = req["capacityProviderStrategy"]
        else:
            svc["launchType"] = req.get("launchType", "FARGATE")
        self.services[(c["clusterName"], name)] = {k: v for k, v in svc.items() if v is not None or k.startswith("_")}
        svc = self.services[(c["clusterName"], name)]
        if svc["deploymentController"].get("type") == "CODE_DEPLOY":
            ts = self.new_task_set(svc, td, "Blue", lbs[0].get("targetGroupArn") or "")
            ts.update(status="PRIMARY", _weight=100.0, _test=True)
        else:
            self.start_deployment(svc, td)
        return {"service": self.service_shape(svc)}

    def op_DescribeServices(self, req):
        if len(req.get("services") or []) > 10:
            raise ApiError("InvalidParameterException", "services can have at most 10 items")
        c = self.cluster(req.get("cluster"))
        out, failures = [], []
        for ref in req.get("services") or []:
            s = None if self.foreign(ref) else self.services.get((c["clusterName"], ref.split("/")[-1]))
            if s:
                snap = self.stale(s)
                out.append(copy.deepcopy(snap["service"]) if snap else self.service_shape(s))
            else:
                failures.append({"arn": self.arn("service", f"{c['clusterName']}/{ref.split('/')[-1]}"), "reason": "MISSING"})
        return {"services": out, "failures": failures}

    def op_UpdateService(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        td = self.task_definition(req["taskDefinition"]) if req.get("taskDefinition") else None
        if svc["deploymentController"].get("type") == "CODE_DEPLOY" and (
                (td and td["taskDefinitionArn"] != svc["taskDefinition"]) or req.get("forceNewDeployment")
                or req.get("loadBalancers") is not None):
            raise ApiError("InvalidParameterException",
                           "Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
                           "Use AWS CodeDeploy to trigger a new deployment.")
        lbs = req.get("loadBalancers")
        if lbs is not None:
            self.check_load_balancers(lbs, td or self.task_definition(svc["taskDefinition"]))
        self.remember_before_update(svc)
        if req.get("deploymentConfiguration"):
            svc["deploymentConfiguration"].update(copy.deepcopy(req["deploymentConfiguration"]))
        if req.get("desiredCount") is not None:
            self.set_desired_count(svc, req["desiredCount"])
        if req.get("healthCheckGracePeriodSeconds") is not None:
            svc["healthCheckGracePeriodSeconds"] = req["healthCheckGracePeriodSeconds"]
        lbs_changed = lbs is not None and lbs != svc.get("loadBalancers")
        if lbs is not None:
            svc["loadBalancers"] = copy.deepcopy(lbs)
        if (td and td["taskDefinitionArn"] != svc["taskDefinition"]) or req.get("forceNewDeployment") or lbs_changed:
            self.start_deployment(svc, td or self.task_definition(svc["taskDefinition"]))
        # The answer to UpdateService itself is always current.
        return {"service": self.service_shape(svc)}

    def op_DeleteService(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        svc["status"] = "INACTIVE"
        return {"service": self.service_shape(svc)}

    # ---------- tasks
    def op_ListTasks(self, req):
        c = self.cluster(req.get("cluster"))
        want = req.get("desiredStatus", "RUNNING")
        out = []
        for t in self.tasks.values():
            if t["clusterArn"] != c["clusterArn"] or t["desiredStatus"] != want:
                continue
            if req.get("serviceName") and t["group"] != f"service:{req['serviceName'].split('/')[-1]}":
                continue
            if req.get("startedBy") and t["startedBy"] != req["startedBy"]:
                continue
            if req.get("family") and f"task-definition/{req['family']}:" not in t["taskDefinitionArn"]:
                continue
            out.append(t["taskArn"])
        return {"taskArns": out}

    def op_DescribeTasks(self, req):
        self.cluster(req.get("cluster"))
        out, failures = [], []
        for ref in req.get("tasks") or []:
            t = self.tasks.get(ref) or next((t for a, t in self.tasks.items() if a.endswith("/" + ref)), None)
            if t:
                out.append(self.public(t))
            else:
                failures.append({"arn": ref, "reason": "MISSING"})
        return {"tasks": out, "failures": failures}

    # ---------- service deployments and revisions
    def op_ListServiceDeployments(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        snap = self.stale(svc)
        shapes = list(snap["sds"].values()) if snap else \
            [self.sd_shape(sd) for sd in self.service_deployments.values() if sd["serviceArn"] == svc["serviceArn"]]
        created, statuses = req.get("createdAt") or {}, req.get("status")
        out = []
        for sd in shapes:
            if created.get("after") is not None and sd["createdAt"] < created["after"]:
                continue
            if created.get("before") is not None and sd["createdAt"] > created["before"]:
                continue
            if statuses and sd["status"] not in statuses:
                continue
            out.append(self.sd_brief(sd))
        out.sort(key=lambda b: b["createdAt"], reverse=True)
        return {"serviceDeployments": out[: req.get("maxResults", 20)]}

    def op_DescribeServiceDeployments(self, req):
        if len(req.get("serviceDeploymentArns") or []) > 20:
            raise ApiError("InvalidParameterException", "serviceDeploymentArns can have at most 20 items")
        out, failures = [], []
        for arn in req.get("serviceDeploymentArns") or []:
            sd = self.service_deployments.get(arn)
            snap = self.stale_for_arn(sd["serviceArn"]) if sd else None
            shape = (snap["sds"].get(arn) if snap else self.sd_shape(sd)) if sd else None
            if shape:
                out.append(copy.deepcopy(shape))
            else:
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"serviceDeployments": out, "failures": failures}

    def op_DescribeServiceRevisions(self, req):
        out, failures = [], []
        for arn in req.get("serviceRevisionArns") or []:
            r = self.revisions.get(arn)
            snap = self.stale_for_arn(r["serviceArn"]) if r else None
            if r and (snap is None or arn in snap["revisions"]):
                out.append(copy.deepcopy(r))
            else:
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"serviceRevisions": out, "failures": failures}

    def op_ContinueServiceDeployment(self, req):
        sd = self.service_deployments.get(req.get("serviceDeploymentArn"))
        if sd is None:
            raise ApiError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
        action = req.get("action", "CONTINUE")
        if action not in ("CONTINUE", "ROLLBACK"):
            raise ApiError("InvalidParameterException", f"Invalid action {action!r}.")
        if sd["status"] != "IN_PROGRESS":
            raise ApiError("InvalidParameterException", f"The service deployment is {sd['status']}, not paused.")
        self.continue_service_deployment(sd, req.get("hookId"), action)
        return {"serviceDeploymentArn": sd["serviceDeploymentArn"]}

    def op_StopServiceDeployment(self, req):
        sd = self.service_deployments.get(req.get("serviceDeploymentArn"))
        if sd is None:
            raise ApiError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
        stop_type = req.get("stopType", "ROLLBACK")
        if stop_type not in ("ROLLBACK", "ABORT"):
            raise ApiError("InvalidParameterException", f"Invalid stopType {stop_type!r}.")
        self.stop_service_deployment(sd, stop_type)
        return {"serviceDeploymentArn": sd["serviceDeploymentArn"]}
