#!/usr/bin/env python3
"""An ECS rollout simulator for ferry's tests and demo.

Nothing local runs ECS rollouts (moto's deployments never progress or fail), so this speaks
the ECS JSON protocol (awsJson1_1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`)
and moves deployments forward in real time: tasks start, turn healthy or crash, old tasks
drain, the deployment circuit breaker trips and rolls back, and the service-deployments API
(ListServiceDeployments / DescribeServiceDeployments / StopServiceDeployment /
DescribeServiceRevisions) reports how each deployment ended. Shapes, enum values, error codes
and event wording follow the ECS API reference; see README.md beside this file.

It also serves the app behind each service, like a load balancer: `GET
/app/<cluster>/<service>/health` answers from one healthy task, with the version of the image
that task really runs. How an image behaves is set through `/_sim/images`.

    python3 tests/ecs_sim/ecs_sim.py --port 0      # prints ECS_SIM_ENDPOINT=http://127.0.0.1:PORT

Standard library only; binds 127.0.0.1.
"""
import argparse
import json
import math
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def now():
    return time.time()


def digits(n):
    return "".join(random.choice("0123456789") for _ in range(n))


def short_id():
    return uuid.uuid4().hex


class Sim:
    def __init__(self, account, region, scale):
        self.lock = threading.RLock()
        self.account, self.region, self.scale = account, region, scale
        self.clusters = {}            # name -> cluster
        self.families = {}            # family -> [task definition dicts]
        self.td_tags = {}             # task definition ARN -> [{"key","value"}]
        self.services = {}            # (cluster, name) -> service
        self.tasks = {}               # task ARN -> task
        self.service_deployments = {}  # ARN -> service deployment
        self.revisions = {}           # service revision ARN -> service revision
        self.images = {}              # image string -> behaviour
        self.faults = {}              # operation -> [error code, remaining]
        self.calls = Counter()
        self.timing = {"task_start_seconds": 0.3, "health_seconds": 0.3, "bake_seconds": 0.2,
                       "stop_seconds": 0.2, "slow_start_seconds": 3600.0}
        self.rr = Counter()

    # ---------- helpers
    def arn(self, kind, rest):
        return f"arn:aws:ecs:{self.region}:{self.account}:{kind}/{rest}"

    def t(self, key):
        return self.timing[key] * self.scale

    def cluster(self, ref):
        name = (ref or "default").split("/")[-1]
        c = self.clusters.get(name)
        if c is None:
            raise ApiError("ClusterNotFoundException", "Cluster not found.")
        return c

    def service(self, cluster_ref, ref):
        c = self.cluster(cluster_ref)
        name = (ref or "").split("/")[-1]
        s = self.services.get((c["clusterName"], name))
        if s is None or s["status"] != "ACTIVE":
            raise ApiError("ServiceNotFoundException", "Service not found.")
        return s

    def task_definition(self, ref):
        if not ref:
            raise ApiError("ClientException", "TaskDefinition is required.")
        name = ref.split("task-definition/")[-1]
        family, _, rev = name.partition(":")
        revs = self.families.get(family)
        if not revs:
            raise ApiError("ClientException", "Unable to describe task definition.")
        if rev:
            for td in revs:
                if str(td["revision"]) == rev:
                    return td
            raise ApiError("ClientException", "Unable to describe task definition.")
        active = [td for td in revs if td["status"] == "ACTIVE"]
        if not active:
            raise ApiError("ClientException", "Unable to describe task definition.")
        return active[-1]

    def behaviour(self, image):
        b = self.images.get(image)
        if b is None and "@sha256:" in (image or ""):
            digest = image.split("@", 1)[1]
            b = next((v for k, v in self.images.items() if k.endswith("@" + digest)), None)
        return b or {"version": "unknown", "behavior": "healthy"}

    def td_behaviour(self, td):
        c = next((c for c in td["containerDefinitions"] if c.get("essential", True)), td["containerDefinitions"][0])
        b = dict(self.behaviour(c.get("image")))
        for kv in c.get("environment") or []:
            if kv.get("name") == "SIM_BEHAVIOR":
                b["behavior"] = kv.get("value")
        return b

    def event(self, svc, message):
        svc["events"].insert(0, {"id": str(uuid.uuid4()), "createdAt": now(), "message": message})
        del svc["events"][100:]

    # ---------- task definitions
    def register_task_definition(self, req):
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

    # ---------- services and deployments
    def new_revision(self, svc, td):
        rid = digits(19)
        arn = self.arn("service-revision", f"{svc['clusterName']}/{svc['serviceName']}/{rid}")
        images = [{"containerName": c.get("name"), "image": c.get("image"),
                   "imageDigest": (c.get("image") or "").split("@", 1)[1] if "@" in (c.get("image") or "") else None}
                  for c in td["containerDefinitions"]]
        self.revisions[arn] = {
            "serviceRevisionArn": arn, "serviceArn": svc["serviceArn"], "clusterArn": svc["clusterArn"],
            "taskDefinition": td["taskDefinitionArn"], "launchType": svc.get("launchType", "FARGATE"),
            "containerImages": [{k: v for k, v in i.items() if v is not None} for i in images],
            "createdAt": now(),
        }
        return arn

    def new_deployment(self, svc, td, service_deployment=None, rollback=False):
        d = {"id": f"ecs-svc/{digits(19)}", "status": "PRIMARY", "taskDefinition": td["taskDefinitionArn"],
             "desiredCount": svc["desiredCount"], "failedTasks": 0, "createdAt": now(), "updatedAt": now(),
             "launchType": svc.get("launchType", "FARGATE"), "rolloutState": "IN_PROGRESS",
             "rolloutStateReason": "ECS deployment {id} in progress.",
             "_sd": service_deployment, "_rollback": rollback, "_completed_at": None}
        d["rolloutStateReason"] = f"ECS deployment {d['id']} in progress."
        for old in svc["deployments"]:
            if old["status"] == "PRIMARY":
                old["status"] = "ACTIVE"
                old["updatedAt"] = now()
        svc["deployments"].insert(0, d)
        return d

    def start_deployment(self, svc, td, first=False):
        rev = self.new_revision(svc, td)
        sources = [self.deployment_revision(svc, d) for d in svc["deployments"]]
        # A deployment in flight is superseded.
        for d in svc["deployments"]:
            sd = self.service_deployments.get(d.get("_sd"))
            if sd and sd["status"] in ("PENDING", "IN_PROGRESS"):
                sd.update(status="STOPPED", statusReason="Superseded by a newer deployment.", stoppedAt=now(), updatedAt=now())
        sd_arn = self.arn("service-deployment", f"{svc['clusterName']}/{svc['serviceName']}/{uuid.uuid4().hex[:22]}")
        self.service_deployments[sd_arn] = {
            "serviceDeploymentArn": sd_arn, "serviceArn": svc["serviceArn"], "clusterArn": svc["clusterArn"],
            "createdAt": now(), "startedAt": now(), "updatedAt": now(),
            "sourceServiceRevisions": [s for s in sources if s],
            "targetServiceRevision": {"arn": rev, "requestedTaskCount": svc["desiredCount"], "runningTaskCount": 0, "pendingTaskCount": 0},
            "status": "IN_PROGRESS", "statusReason": "",
            "deploymentConfiguration": svc["deploymentConfiguration"],
            "deploymentCircuitBreaker": {"status": "MONITORING" if self.breaker(svc)["enable"] else "DISABLED",
                                         "failureCount": 0, "threshold": self.threshold(svc)},
            "_source_td": svc["deployments"][0]["taskDefinition"] if svc["deployments"] else None,
            "_source_rev": sources[0]["arn"] if sources and sources[0] else None,
        }
        d = self.new_deployment(svc, td, sd_arn)
        d["_rev"] = rev
        svc["taskDefinition"] = td["taskDefinitionArn"]
        return d

    def deployment_revision(self, svc, d):
        rev = d.get("_rev")
        if not rev:
            return None
        running = sum(1 for t in self.tasks_of(d) if t["lastStatus"] == "RUNNING")
        pending = sum(1 for t in self.tasks_of(d) if t["lastStatus"] in ("PROVISIONING", "PENDING"))
        return {"arn": rev, "requestedTaskCount": d["desiredCount"], "runningTaskCount": running, "pendingTaskCount": pending}

    def breaker(self, svc):
        return (svc["deploymentConfiguration"].get("deploymentCircuitBreaker")
                or {"enable": False, "rollback": False})

    def threshold(self, svc):
        return int(min(200, max(3, math.ceil(0.5 * svc["desiredCount"]))))

    def tasks_of(self, d):
        return [t for t in self.tasks.values() if t["startedBy"] == d["id"]]

    def launch(self, svc, d):
        td = self.task_definition(d["taskDefinition"])
        b = self.td_behaviour(td)
        tid = short_id()
        start = b.get("start_seconds")
        if start is None:
            start = self.timing["slow_start_seconds"] if b.get("behavior") == "slow" else self.timing["task_start_seconds"]
        t = {
            "taskArn": self.arn("task", f"{svc['clusterName']}/{tid}"), "clusterArn": svc["clusterArn"],
            "taskDefinitionArn": d["taskDefinition"], "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
            "healthStatus": "UNKNOWN", "startedBy": d["id"], "group": f"service:{svc['serviceName']}",
            "createdAt": now(), "launchType": svc.get("launchType", "FARGATE"), "version": 1,
            "containers": [{"containerArn": self.arn("container", f"{svc['clusterName']}/{tid}/{short_id()}"),
                            "taskArn": self.arn("task", f"{svc['clusterName']}/{tid}"), "name": c.get("name"),
                            "image": c.get("image"), "lastStatus": "PENDING", "healthStatus": "UNKNOWN"}
                           for c in td["containerDefinitions"]],
            "_behavior": b.get("behavior", "healthy"), "_version": b.get("version", "unknown"),
            "_start_at": now() + start * self.scale,
            "_unhealthy_at": None, "_stop_at": None, "_service": (svc["clusterName"], svc["serviceName"]),
        }
        if t["_behavior"] == "unhealthy":
            t["_unhealthy_at"] = t["_start_at"] + (b.get("unhealthy_after_seconds") or 0.5) * self.scale
        self.tasks[t["taskArn"]] = t
        return t

    def stop_task(self, svc, t, code, reason, exit_code=None, container_reason=None, failed=False):
        t.update(desiredStatus="STOPPED", lastStatus="STOPPED", stopCode=code, stoppedReason=reason,
                 stoppingAt=now(), stoppedAt=now(), executionStoppedAt=now(), healthStatus="UNKNOWN")
        for c in t["containers"]:
            c["lastStatus"] = "STOPPED"
            if exit_code is not None:
                c["exitCode"] = exit_code
            if container_reason:
                c["reason"] = container_reason
        if failed:
            d = next((d for d in svc["deployments"] if d["id"] == t["startedBy"]), None)
            if d is not None:
                d["failedTasks"] += 1
                sd = self.service_deployments.get(d.get("_sd"))
                if sd:
                    sd["deploymentCircuitBreaker"]["failureCount"] += 1
        self.event(svc, f"(service {svc['serviceName']}) has stopped 1 running tasks: (task {t['taskArn'].split('/')[-1]}).")

    # ---------- the clock
    def tick(self):
        with self.lock:
            tnow = now()
            for svc in self.services.values():
                if svc["status"] != "ACTIVE":
                    continue
                self.tick_tasks(svc, tnow)
                self.tick_service(svc, tnow)

    def tick_tasks(self, svc, tnow):
        for t in list(self.tasks.values()):
            if t["_service"] != (svc["clusterName"], svc["serviceName"]) or t["lastStatus"] == "STOPPED":
                continue
            if t["_stop_at"] is not None:
                if tnow >= t["_stop_at"]:
                    self.stop_task(svc, t, "ServiceSchedulerInitiated", t["_stop_reason"], exit_code=0)
                continue
            if t["lastStatus"] == "PROVISIONING" and tnow >= t["_start_at"] - 0.5 * self.t("task_start_seconds"):
                t["lastStatus"] = "PENDING"
            if t["lastStatus"] in ("PROVISIONING", "PENDING") and tnow >= t["_start_at"]:
                if t["_behavior"] == "crash":
                    self.stop_task(svc, t, "EssentialContainerExited", "Essential container in task exited",
                                   exit_code=1, container_reason="Error: application exited during start-up", failed=True)
                    continue
                t.update(lastStatus="RUNNING", startedAt=tnow, pullStartedAt=t["createdAt"], pullStoppedAt=tnow)
                for c in t["containers"]:
                    c["lastStatus"] = "RUNNING"
                self.event(svc, f"(service {svc['serviceName']}) has started 1 tasks: (task {t['taskArn'].split('/')[-1]}).")
            if t["lastStatus"] == "RUNNING" and t["healthStatus"] != "HEALTHY" and tnow >= t["_start_at"] + self.t("health_seconds"):
                t["healthStatus"] = "HEALTHY"
                for c in t["containers"]:
                    c["healthStatus"] = "HEALTHY"
            if t["lastStatus"] == "RUNNING" and t["_unhealthy_at"] is not None and tnow >= t["_unhealthy_at"]:
                self.stop_task(svc, t, "TaskFailedToStart", "Task failed container health checks",
                               exit_code=137, container_reason="container health check failed", failed=True)

    def tick_service(self, svc, tnow):
        deps = svc["deployments"]
        if not deps:
            return
        primary = deps[0]
        desired = svc["desiredCount"]
        dc = svc["deploymentConfiguration"]
        max_total = max(desired, math.floor(desired * dc.get("maximumPercent", 200) / 100))
        live = lambda d: [t for t in self.tasks_of(d) if t["lastStatus"] != "STOPPED" and t["_stop_at"] is None]
        healthy = lambda d: [t for t in live(d) if t["lastStatus"] == "RUNNING" and t["healthStatus"] == "HEALTHY"]

        # Circuit breaker.
        sd = self.service_deployments.get(primary.get("_sd"))
        br = self.breaker(svc)
        if br.get("enable") and primary["rolloutState"] == "IN_PROGRESS" and primary["failedTasks"] >= self.threshold(svc):
            primary["rolloutState"] = "FAILED"
            primary["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
            primary["updatedAt"] = tnow
            self.event(svc, f"(service {svc['serviceName']}) (deployment {primary['id']}) deployment failed: tasks failed to start.")
            if sd:
                sd["deploymentCircuitBreaker"]["status"] = "TRIGGERED"
            for t in live(primary):
                self.schedule_stop(t, primary)
            if sd and sd["status"] in ("ROLLBACK_IN_PROGRESS", "ROLLBACK_REQUESTED"):
                sd.update(status="ROLLBACK_FAILED", statusReason="The rollback failed: tasks failed to start.",
                          finishedAt=tnow, updatedAt=tnow)
                return
            if br.get("rollback") and sd and sd.get("_source_td"):
                self.roll_back(svc, sd, "Circuit breaker triggered: tasks failed to start.")
                return
            if sd:
                sd.update(status="STOPPED", statusReason="ECS deployment circuit breaker: tasks failed to start.",
                          stoppedAt=tnow, updatedAt=tnow)
            return
        if primary["rolloutState"] == "FAILED":
            return

        # Launch replacement tasks for the primary, within maximumPercent.
        total_live = sum(len(live(d)) for d in deps)
        need = desired - len(live(primary))
        for _ in range(max(0, min(need, max_total - total_live))):
            self.launch(svc, primary)

        # Drain older deployments as the primary turns healthy (minimumHealthyPercent kept).
        h_primary = len(healthy(primary))
        min_healthy = math.ceil(desired * dc.get("minimumHealthyPercent", 100) / 100)
        for d in deps[1:]:
            old_live = live(d)
            keep = max(0, min_healthy - h_primary) if h_primary < desired else 0
            for t in old_live[keep:]:
                self.schedule_stop(t, primary)
        for d in deps[1:]:
            if not [t for t in self.tasks_of(d) if t["lastStatus"] != "STOPPED"]:
                d["status"] = "INACTIVE"
        svc["deployments"] = [d for d in deps if d["status"] != "INACTIVE"]
        deps = svc["deployments"]

        # Completion, bake, success.
        if primary["rolloutState"] == "IN_PROGRESS" and h_primary >= desired and len(deps) == 1:
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
            primary["updatedAt"] = tnow
            primary["_completed_at"] = tnow
            self.event(svc, f"(service {svc['serviceName']}) (deployment {primary['id']}) deployment completed.")
            self.event(svc, f"(service {svc['serviceName']}) has reached a steady state.")
        if sd and primary["rolloutState"] == "COMPLETED" and tnow >= primary["_completed_at"] + self.t("bake_seconds"):
            if sd["status"] == "IN_PROGRESS":
                sd.update(status="SUCCESSFUL", statusReason="", finishedAt=tnow, updatedAt=tnow)
            elif sd["status"] in ("ROLLBACK_IN_PROGRESS", "ROLLBACK_REQUESTED"):
                sd.update(status="ROLLBACK_SUCCESSFUL", finishedAt=tnow, updatedAt=tnow)
        if sd:
            sd["targetServiceRevision"] = self.deployment_revision(svc, primary) or sd["targetServiceRevision"]

    def schedule_stop(self, t, by):
        if t["_stop_at"] is None and t["lastStatus"] != "STOPPED":
            t["_stop_at"] = now() + self.t("stop_seconds")
            t["_stop_reason"] = f"Scaling activity initiated by (deployment {by['id']})"
            t["desiredStatus"] = "STOPPED"

    def roll_back(self, svc, sd, reason):
        td = self.task_definition(sd["_source_td"])
        sd.update(status="ROLLBACK_IN_PROGRESS", updatedAt=now(),
                  rollback={"reason": reason, "startedAt": now(), "serviceRevisionArn": sd.get("_source_rev")})
        failed = svc["deployments"][0]
        d = self.new_deployment(svc, td, sd["serviceDeploymentArn"], rollback=True)
        d["_rev"] = sd.get("_source_rev")
        svc["taskDefinition"] = td["taskDefinitionArn"]
        self.event(svc, f"(service {svc['serviceName']}) rolling back to deployment {d['id']}.")
        for t in [t for t in self.tasks_of(failed) if t["lastStatus"] != "STOPPED"]:
            self.schedule_stop(t, d)

    # ---------- shapes
    def service_shape(self, svc):
        deps = []
        for d in svc["deployments"]:
            ts = self.tasks_of(d)
            deps.append({k: v for k, v in d.items() if not k.startswith("_")} | {
                "runningCount": sum(1 for t in ts if t["lastStatus"] == "RUNNING" and t["_stop_at"] is None),
                "pendingCount": sum(1 for t in ts if t["lastStatus"] in ("PROVISIONING", "PENDING")),
            })
        out = {k: v for k, v in svc.items() if not k.startswith("_") and k != "clusterName"}
        out["deployments"] = deps
        out["runningCount"] = sum(d["runningCount"] for d in deps)
        out["pendingCount"] = sum(d["pendingCount"] for d in deps)
        return out

    def public(self, obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # ---------- operations
    def op(self, name, req):
        self.calls[name] += 1
        fault = self.faults.get(name)
        if fault and fault[1] > 0:
            fault[1] -= 1
            raise ApiError(fault[0], "Rate exceeded" if fault[0] == "ThrottlingException" else "Injected fault")
        handler = getattr(self, "op_" + name, None)
        if handler is None:
            raise ApiError("UnknownOperationException", f"The simulator does not implement {name}.")
        with self.lock:
            return handler(req)

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
            c = self.clusters.get(ref.split("/")[-1])
            if c:
                out.append(c)
            else:
                failures.append({"arn": ref, "reason": "MISSING"})
        return {"clusters": out, "failures": failures}

    def op_RegisterTaskDefinition(self, req):
        return self.register_task_definition(req)

    def op_DescribeTaskDefinition(self, req):
        td = self.task_definition(req.get("taskDefinition"))
        out = {"taskDefinition": td}
        if "TAGS" in (req.get("include") or []):
            out["tags"] = self.td_tags.get(td["taskDefinitionArn"], [])
        return out

    def op_ListTaskDefinitions(self, req):
        prefix = req.get("familyPrefix")
        status = req.get("status", "ACTIVE")
        arns = [td["taskDefinitionArn"] for fam, revs in sorted(self.families.items())
                if prefix is None or fam == prefix for td in revs if status == "ALL" or td["status"] == status]
        if req.get("sort") == "DESC":
            arns.reverse()
        return {"taskDefinitionArns": arns}

    def op_DeregisterTaskDefinition(self, req):
        td = self.task_definition(req.get("taskDefinition"))
        td["status"] = "INACTIVE"
        td["deregisteredAt"] = now()
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

    def op_CreateService(self, req):
        c = self.cluster(req.get("cluster"))
        name = req.get("serviceName")
        if not name:
            raise ApiError("InvalidParameterException", "serviceName is required.")
        if (c["clusterName"], name) in self.services and self.services[(c["clusterName"], name)]["status"] == "ACTIVE":
            raise ApiError("InvalidParameterException", "Creation of service was not idempotent.")
        td = self.task_definition(req.get("taskDefinition"))
        dc = {"maximumPercent": 200, "minimumHealthyPercent": 100,
              "deploymentCircuitBreaker": {"enable": False, "rollback": False}}
        dc.update(req.get("deploymentConfiguration") or {})
        svc = {
            "serviceArn": self.arn("service", f"{c['clusterName']}/{name}"), "serviceName": name,
            "clusterArn": c["clusterArn"], "clusterName": c["clusterName"], "status": "ACTIVE",
            "desiredCount": req.get("desiredCount", 1), "launchType": req.get("launchType", "FARGATE"),
            "taskDefinition": td["taskDefinitionArn"], "deploymentConfiguration": dc,
            "deployments": [], "events": [], "createdAt": now(), "createdBy": f"arn:aws:iam::{self.account}:user/ferry-sim",
            "loadBalancers": req.get("loadBalancers") or [], "serviceRegistries": [],
            "networkConfiguration": req.get("networkConfiguration"), "schedulingStrategy": "REPLICA",
            "deploymentController": req.get("deploymentController") or {"type": "ECS"}, "enableECSManagedTags": False, "propagateTags": "NONE",
            "enableExecuteCommand": False, "tags": req.get("tags") or [],
        }
        if req.get("healthCheckGracePeriodSeconds") is not None:
            svc["healthCheckGracePeriodSeconds"] = req["healthCheckGracePeriodSeconds"]
        svc = {k: v for k, v in svc.items() if v is not None}
        svc["clusterName"] = c["clusterName"]
        self.services[(c["clusterName"], name)] = svc
        self.start_deployment(svc, td, first=True)
        return {"service": self.service_shape(svc)}

    def op_DescribeServices(self, req):
        c = self.cluster(req.get("cluster"))
        out, failures = [], []
        for ref in req.get("services") or []:
            s = self.services.get((c["clusterName"], ref.split("/")[-1]))
            if s:
                out.append(self.service_shape(s))
            else:
                failures.append({"arn": self.arn("service", f"{c['clusterName']}/{ref.split('/')[-1]}"), "reason": "MISSING"})
        return {"services": out, "failures": failures}

    def op_UpdateService(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        if req.get("deploymentConfiguration"):
            svc["deploymentConfiguration"].update(req["deploymentConfiguration"])
        if req.get("desiredCount") is not None:
            svc["desiredCount"] = req["desiredCount"]
            for d in svc["deployments"][:1]:
                d["desiredCount"] = req["desiredCount"]
        if req.get("healthCheckGracePeriodSeconds") is not None:
            svc["healthCheckGracePeriodSeconds"] = req["healthCheckGracePeriodSeconds"]
        td = self.task_definition(req["taskDefinition"]) if req.get("taskDefinition") else None
        if (td and td["taskDefinitionArn"] != svc["taskDefinition"]) or req.get("forceNewDeployment"):
            self.start_deployment(svc, td or self.task_definition(svc["taskDefinition"]))
        return {"service": self.service_shape(svc)}

    def op_DeleteService(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        svc["status"] = "INACTIVE"
        return {"service": self.service_shape(svc)}

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

    def op_ListServiceDeployments(self, req):
        svc = self.service(req.get("cluster"), req.get("service"))
        created = req.get("createdAt") or {}
        statuses = req.get("status")
        out = []
        for sd in self.service_deployments.values():
            if sd["serviceArn"] != svc["serviceArn"]:
                continue
            if created.get("after") is not None and sd["createdAt"] < created["after"]:
                continue
            if created.get("before") is not None and sd["createdAt"] > created["before"]:
                continue
            if statuses and sd["status"] not in statuses:
                continue
            out.append({k: sd[k] for k in ("serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt",
                                          "finishedAt", "status", "statusReason") if k in sd and sd[k] is not None}
                       | {"targetServiceRevisionArn": sd["targetServiceRevision"]["arn"]})
        out.sort(key=lambda b: b["createdAt"], reverse=True)
        return {"serviceDeployments": out[: req.get("maxResults", 20)]}

    def op_DescribeServiceDeployments(self, req):
        out, failures = [], []
        for arn in req.get("serviceDeploymentArns") or []:
            sd = self.service_deployments.get(arn)
            if sd:
                out.append({k: v for k, v in sd.items() if not k.startswith("_") and v not in (None, "")})
            else:
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"serviceDeployments": out, "failures": failures}

    def op_DescribeServiceRevisions(self, req):
        out, failures = [], []
        for arn in req.get("serviceRevisionArns") or []:
            r = self.revisions.get(arn)
            if r:
                out.append(r)
            else:
                failures.append({"arn": arn, "reason": "MISSING"})
        return {"serviceRevisions": out, "failures": failures}

    def op_StopServiceDeployment(self, req):
        sd = self.service_deployments.get(req.get("serviceDeploymentArn"))
        if sd is None:
            raise ApiError("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
        if sd["status"] not in ("PENDING", "IN_PROGRESS"):
            raise ApiError("ConflictException", f"The service deployment is {sd['status']} and cannot be stopped.")
        svc = next(s for s in self.services.values() if s["serviceArn"] == sd["serviceArn"])
        if req.get("stopType", "ROLLBACK") == "ROLLBACK":
            if not sd.get("_source_td"):
                raise ApiError("InvalidParameterException", "There is no previous revision to roll back to.")
            sd.update(status="ROLLBACK_REQUESTED", updatedAt=now())
            self.roll_back(svc, sd, "Stopped by StopServiceDeployment with stopType ROLLBACK.")
        else:
            sd.update(status="STOP_REQUESTED", updatedAt=now())
            svc["deployments"][0]["rolloutState"] = "FAILED"
            svc["deployments"][0]["rolloutStateReason"] = "Deployment stopped."
            sd.update(status="STOPPED", stoppedAt=now())
        return {"serviceDeploymentArn": sd["serviceDeploymentArn"]}

    # ---------- the app behind the service
    def health(self, cluster, service):
        with self.lock:
            svc = self.services.get((cluster, service))
            if svc is None:
                return 404, {"status": "error", "message": "no such service"}
            up = [t for t in self.tasks.values() if t["_service"] == (cluster, service)
                  and t["lastStatus"] == "RUNNING" and t["healthStatus"] == "HEALTHY"]
            if not up:
                return 503, {"status": "error", "message": "no healthy targets"}
            up.sort(key=lambda t: t["createdAt"])
            self.rr[(cluster, service)] += 1
            t = up[self.rr[(cluster, service)] % len(up)]
            if t["_behavior"] == "smoke-error":
                return 500, {"status": "error", "version": t["_version"]}
            return 200, {"status": "ok", "version": t["_version"], "taskDefinition": t["taskDefinitionArn"]}


class Handler(BaseHTTPRequestHandler):
    sim: Sim = None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("ecs-sim: " + (fmt % args) + "\n")

    def send_json(self, status, body, headers=None):
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1" if self.path == "/" else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw or b"{}")

    def do_POST(self):
        try:
            if self.path.startswith("/_sim/"):
                return self.control(self.path[len("/_sim/"):], self.body())
            target = self.headers.get("X-Amz-Target", "")
            if not target.startswith(TARGET_PREFIX):
                raise ApiError("UnknownOperationException", f"Unknown target {target!r}.")
            self.send_json(200, self.sim.op(target[len(TARGET_PREFIX):], self.body()))
        except ApiError as e:
            self.send_json(e.status, {"__type": e.code, "message": e.message}, {"x-amzn-ErrorType": e.code})
        except Exception as e:  # a bug here must look like a server error, not hang the client
            self.send_json(500, {"__type": "ServerException", "message": f"simulator error: {e!r}"},
                           {"x-amzn-ErrorType": "ServerException"})

    def control(self, what, req):
        s = self.sim
        with s.lock:
            if what == "images":
                s.images[req["image"]] = {k: v for k, v in req.items() if k != "image"}
            elif what == "faults":
                s.faults[req["operation"]] = [req.get("error", "ThrottlingException"), int(req.get("count", 1))]
            elif what == "timing":
                s.timing.update({k: float(v) for k, v in req.items() if k in s.timing})
            else:
                return self.send_json(404, {"message": f"unknown control {what}"})
        self.send_json(200, {"ok": True})

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "app" and parts[3] == "health":
            status, body = self.sim.health(parts[1], parts[2])
            return self.send_json(status, body)
        if self.path == "/_sim/calls":
            return self.send_json(200, dict(self.sim.calls))
        if self.path == "/_sim/state":
            with self.sim.lock:
                state = {
                    "services": [self.sim.service_shape(s) for s in self.sim.services.values()],
                    "tasks": [self.sim.public(t) for t in self.sim.tasks.values()],
                    "serviceDeployments": [self.sim.public(s) for s in self.sim.service_deployments.values()],
                    "images": self.sim.images, "timing": self.sim.timing,
                }
            return self.send_json(200, state)
        self.send_json(404, {"message": "not found"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--account-id", default="123456789012")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--time-scale", type=float, default=1.0)
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("ecs-sim: binds loopback only")
    sim = Sim(a.account_id, a.region, a.time_scale)
    Handler.sim = sim
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()

    def clock():
        while not stop.is_set():
            try:
                sim.tick()
            except Exception as e:  # keep the clock running; the error shows in the log
                sys.stderr.write(f"ecs-sim: tick failed: {e!r}\n")
            stop.wait(0.05)

    threading.Thread(target=clock, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), threading.Thread(target=server.shutdown).start()))
    print(f"ECS_SIM_ENDPOINT=http://{a.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    stop.set()


if __name__ == "__main__":
    main()
