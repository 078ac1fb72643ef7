"""The ECS service scheduler, one tick at a time (every 50 ms).

Tasks: PROVISIONING (placed or waiting for capacity) -> PENDING -> RUNNING, then a container
health check, a load balancer target health check, or neither decides whether a task is "up".
Deployments: launch within maximumPercent, drain older deployments within
minimumHealthyPercent, reach a steady state, bake, succeed; or fail through the circuit breaker
or a deployment alarm, then roll back to the last COMPLETED deployment (or stall without one).
Service deployments: PENDING -> IN_PROGRESS -> SUCCESSFUL | STOPPED | ROLLBACK_REQUESTED ->
ROLLBACK_IN_PROGRESS -> ROLLBACK_SUCCESSFUL | ROLLBACK_FAILED, and STOP_REQUESTED -> STOPPED.
"""
import copy
import math
import random
import uuid

from .util import ApiError, digits, now, short_id
from .world import ENDED

STOPPED_TASK_RETENTION = 3600.0   # ECS shows stopped tasks for about an hour...
STOPPED_TASKS_KEPT = 2000         # ...the simulator keeps at most this many of them


class Scheduler:
    # ---------- creating deployments
    def new_revision(self, svc, td):
        arn = self.arn("service-revision", f"{svc['clusterName']}/{svc['serviceName']}/{digits(19)}")
        images = []
        for c in td["containerDefinitions"]:
            image = c.get("image") or ""
            i = {"containerName": c.get("name"), "image": image}
            if "@" in image:
                i["imageDigest"] = image.split("@", 1)[1]
            images.append(i)
        self.revisions[arn] = {
            "serviceRevisionArn": arn, "serviceArn": svc["serviceArn"], "clusterArn": svc["clusterArn"],
            "taskDefinition": td["taskDefinitionArn"], "launchType": svc.get("launchType", "FARGATE"),
            "loadBalancers": copy.deepcopy(svc.get("loadBalancers") or []),
            "containerImages": images, "createdAt": now(),
        }
        return arn

    def new_deployment(self, svc, td, sd_arn, rev, rollback=False):
        d = {"id": f"ecs-svc/{digits(19)}", "status": "PRIMARY", "taskDefinition": td["taskDefinitionArn"],
             "desiredCount": svc["desiredCount"], "failedTasks": 0, "createdAt": now(), "updatedAt": now(),
             "launchType": svc.get("launchType", "FARGATE"), "rolloutState": "IN_PROGRESS",
             "_sd": sd_arn, "_rev": rev, "_rollback": rollback, "_tasks": [], "_steady_since": None,
             "_completed_at": None, "_start_failures": 0, "_next_launch_at": 0.0, "_halted": False}
        d["rolloutStateReason"] = f"ECS deployment {d['id']} in progress."
        if svc.get("networkConfiguration"):
            d["networkConfiguration"] = svc["networkConfiguration"]
        for old in svc["deployments"]:
            if old["status"] == "PRIMARY":
                old.update(status="ACTIVE", updatedAt=now())
        svc["deployments"].insert(0, d)
        svc["taskDefinition"] = td["taskDefinitionArn"]
        return d

    def start_deployment(self, svc, td):
        """CreateService, or an UpdateService that needs a deployment: a new revision, a new
        service deployment (PENDING) and a new PRIMARY deployment. One in flight is superseded."""
        rev = self.new_revision(svc, td)
        sources = [r for r in (self.revision_summary(d) for d in svc["deployments"]) if r]
        previous = svc["deployments"][0] if svc["deployments"] else None
        for d in svc["deployments"]:
            sd = self.service_deployments.get(d["_sd"])
            if sd and sd["status"] not in ENDED:
                self.end(sd, "STOPPED", "Superseded by a newer service deployment.")
        sd = self.new_service_deployment(svc, rev, sources)
        sd["_source"] = {"td": previous["taskDefinition"], "rev": previous["_rev"]} if previous else None
        d = self.new_deployment(svc, td, sd["serviceDeploymentArn"], rev)
        sd["_target"] = d["id"]
        self.begin_native(svc, d, sd)
        self.resolved(svc, "throttle")   # a new task definition is not throttled
        return d

    def new_service_deployment(self, svc, rev, sources):
        arn = self.arn("service-deployment", f"{svc['clusterName']}/{svc['serviceName']}/{uuid.uuid4().hex[:22]}")
        alarms = svc["deploymentConfiguration"].get("alarms") or {}
        sd = {
            "serviceDeploymentArn": arn, "serviceArn": svc["serviceArn"], "clusterArn": svc["clusterArn"],
            "createdAt": now(), "updatedAt": now(), "sourceServiceRevisions": sources,
            "targetServiceRevision": {"arn": rev, "requestedTaskCount": svc["desiredCount"],
                                      "runningTaskCount": 0, "pendingTaskCount": 0},
            "status": "PENDING", "statusReason": "",
            "deploymentConfiguration": copy.deepcopy(svc["deploymentConfiguration"]),
            "deploymentCircuitBreaker": {"status": "MONITORING" if self.breaker(svc).get("enable") else "DISABLED",
                                         "failureCount": 0, "threshold": self.threshold(svc)},
            "alarms": {"status": "MONITORING" if self.alarm_config(svc) else "DISABLED"},
            "_due": now() + self.t("pending_seconds"),
            "_rollback_to": copy.deepcopy(svc.get("_last_completed")),
        }
        if alarms.get("alarmNames"):
            sd["alarms"]["alarmNames"] = list(alarms["alarmNames"])
        self.service_deployments[arn] = sd
        return sd

    def revision_summary(self, d):
        if not d.get("_rev"):
            return None
        running, pending = self.counts(d)
        return {"arn": d["_rev"], "requestedTaskCount": d["desiredCount"],
                "runningTaskCount": running, "pendingTaskCount": pending}

    def end(self, sd, status, reason=None):
        t = now()
        sd.update(status=status, updatedAt=t, finishedAt=t)
        if status == "STOPPED":
            sd["stoppedAt"] = t
        if reason is not None:
            sd["statusReason"] = reason
        for monitor in (sd["deploymentCircuitBreaker"], sd["alarms"]):
            if monitor.get("status") == "MONITORING":
                monitor["status"] = "MONITORING_COMPLETE"

    # ---------- tasks
    def launch(self, svc, d):
        td = self.task_definition(d["taskDefinition"])
        b = self.td_behaviour(td)
        n = self.started[b["_key"]]
        self.started[b["_key"]] += 1
        behavior = b.get("behavior", "healthy")
        if b.get("failures") is not None and n >= int(b["failures"]):
            behavior = "healthy"   # only the first N tasks of this image misbehave
        tid = short_id()
        task_arn = self.arn("task", f"{svc['clusterName']}/{tid}")
        t = {
            "taskArn": task_arn, "clusterArn": svc["clusterArn"], "taskDefinitionArn": d["taskDefinition"],
            "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING", "healthStatus": "UNKNOWN",
            "startedBy": d["id"], "group": f"service:{svc['serviceName']}", "createdAt": now(),
            "launchType": svc.get("launchType", "FARGATE"), "version": 1,
            "containers": [{"containerArn": self.arn("container", f"{svc['clusterName']}/{tid}/{short_id()}"),
                            "taskArn": task_arn, "name": c.get("name"), "image": c.get("image"),
                            "lastStatus": "PENDING", "healthStatus": "UNKNOWN"} for c in td["containerDefinitions"]],
            "_behavior": behavior, "_version": b.get("version", "unknown"), "_params": b,
            "_service": (svc["clusterName"], svc["serviceName"]), "_placed": False, "_start_at": None,
            "_healthy_at": None, "_unhealthy_at": None, "_exit_at": None, "_has_hc": behavior != "crash-after-running",
            "_target": None, "_target_at": None, "_up": False, "_stop_at": None,
        }
        self.tasks[task_arn] = t
        d["_tasks"].append(t)
        self.try_place(svc, t, now())
        return t

    def start_delay(self, t):
        """Tasks launched together do not start together: up to 30% later than the nominal time."""
        b = t["_params"]
        if b.get("start_seconds") is not None:
            nominal = float(b["start_seconds"]) * self.scale
        else:
            nominal = self.t("slow_start_seconds" if t["_behavior"] == "slow" else "task_start_seconds")
        return nominal * random.uniform(1.0, 1.3)

    def try_place(self, svc, t, tnow):
        if t["_behavior"] == "unplaceable" or svc["clusterName"] in self.no_capacity:
            self.event(svc, self.placement_failure(svc), kind="placement")
            return
        self.resolved(svc, "placement")
        t["_placed"] = True
        t["_start_at"] = tnow + self.start_delay(t)
        self.event(svc, f"(service {svc['serviceName']}) has started 1 tasks: (task {t['taskArn'].split('/')[-1]}).")

    def placement_failure(self, svc):
        name = svc["serviceName"]
        if svc.get("launchType") == "EC2" or svc.get("capacityProviderStrategy"):
            return (f"(service {name}) was unable to place a task because no container instance met all of its "
                    f"requirements. The closest matching (container-instance {self.closest_instance(svc)}) has insufficient "
                    "memory available. For more information, see the Troubleshooting section of the Amazon ECS "
                    "Developer Guide.")
        return (f"(service {name}) was unable to place a task. Reason: Capacity is unavailable at this time. Please "
                "try again later or in a different availability zone. For more information, see the "
                "Troubleshooting section of the Amazon ECS Developer Guide.")

    def closest_instance(self, svc):
        return uuid.uuid5(uuid.NAMESPACE_URL, svc["clusterArn"]).hex

    def tick_task(self, svc, d, t, tnow):
        if t["_stop_at"] is not None:
            if tnow >= t["_stop_at"]:
                ran = t["lastStatus"] == "RUNNING"   # only a container that ran has an exit code
                self.stop_task(svc, d, t, t["_stop_code"], t["_stop_reason"], exit_code=0 if ran else None)
        elif not t["_placed"]:
            self.try_place(svc, t, tnow)
        elif t["lastStatus"] in ("PROVISIONING", "PENDING"):
            self.tick_starting(svc, d, t, tnow)
        elif t["lastStatus"] == "RUNNING":
            self.tick_running(svc, d, t, tnow)

    def tick_starting(self, svc, d, t, tnow):
        if t["lastStatus"] == "PROVISIONING" and tnow >= t["_start_at"] - 0.5 * self.t("task_start_seconds"):
            t.update(lastStatus="PENDING", pullStartedAt=tnow)
        if tnow < t["_start_at"]:
            return
        if t["_behavior"] == "crash":
            # Never RUNNING: counts toward the circuit breaker and the service throttle logic.
            self.count_failure(svc, d)
            self.stop_task(svc, d, t, "EssentialContainerExited", "Essential container in task exited",
                           exit_code=1, container_reason="Error: application exited during start-up")
            self.start_failed(svc, d, tnow)
            return
        self.run(svc, d, t, tnow)

    def run(self, svc, d, t, tnow):
        t.update(lastStatus="RUNNING", startedAt=tnow, pullStoppedAt=tnow, connectivity="CONNECTED", connectivityAt=tnow)
        for c in t["containers"]:
            c["lastStatus"] = "RUNNING"
        d["_start_failures"] = 0
        self.resolved(svc, "throttle")
        b = t["_params"]
        if t["_behavior"] == "crash-after-running":
            after = b.get("exit_after_seconds")
            t["_exit_at"] = tnow + (float(after) * self.scale if after is not None else self.t("exit_after_seconds"))
        elif t["_behavior"] == "unhealthy":
            t["_unhealthy_at"] = tnow + float(b.get("unhealthy_after_seconds") or 0.5) * self.scale
        else:
            t["_healthy_at"] = tnow + self.t("health_seconds")
        if svc.get("loadBalancers"):
            t["_target"], t["_target_at"] = "initial", tnow + self.t("elb_health_seconds")
            for lb in svc["loadBalancers"]:
                tg = d.get("_tg") or lb.get("targetGroupArn")   # a task set has its own target group
                self.event(svc, f"(service {svc['serviceName']}) registered 1 targets in (target-group {tg})")

    def grace_over(self, svc, t, tnow):
        return tnow >= t["startedAt"] + float(svc.get("healthCheckGracePeriodSeconds") or 0) * self.scale

    def tick_running(self, svc, d, t, tnow):
        if t["_exit_at"] is not None and tnow >= t["_exit_at"]:
            # Stopped after RUNNING without a failed health check: no breaker count, no throttle.
            self.stop_task(svc, d, t, "EssentialContainerExited", "Essential container in task exited",
                           exit_code=1, container_reason="Error: application exited")
            return
        if t["_unhealthy_at"] is not None and tnow >= t["_unhealthy_at"]:
            self.container_unhealthy(svc, d, t, tnow)
            return
        if t["_healthy_at"] is not None and t["healthStatus"] != "HEALTHY" and tnow >= t["_healthy_at"]:
            t["healthStatus"] = "HEALTHY"
            for c in t["containers"]:
                c["healthStatus"] = "HEALTHY"
        if t["_target"] == "initial" and tnow >= t["_target_at"]:
            t["_target"] = "unhealthy" if t["_behavior"] == "elb-unhealthy" else "healthy"
        if t["_target"] == "unhealthy":
            self.target_unhealthy(svc, d, t, tnow)
            return
        if not t["_up"] and self.is_up(t):
            t["_up"] = True
            self.task_up(svc, d)

    def container_unhealthy(self, svc, d, t, tnow):
        t["healthStatus"] = "UNHEALTHY"
        for c in t["containers"]:
            c["healthStatus"] = "UNHEALTHY"
        if not self.grace_over(svc, t, tnow):
            return
        self.event(svc, f"(service {svc['serviceName']}) (task {t['taskArn'].split('/')[-1]}) failed container health checks.")
        self.count_failure(svc, d)
        self.stop_task(svc, d, t, "ServiceSchedulerInitiated", "Task failed container health checks",
                       exit_code=137, container_reason="container health check failed")

    def target_unhealthy(self, svc, d, t, tnow):
        if not self.grace_over(svc, t, tnow) or t["_stop_at"] is not None:
            return
        lb = svc["loadBalancers"][0]
        tg = lb.get("targetGroupArn") or ""
        tg_name = tg.split(":targetgroup/")[-1].split("/")[0] or tg
        self.event(svc, f"(service {svc['serviceName']}) (task {t['taskArn'].split('/')[-1]}) (port {lb.get('containerPort')}) "
                        f"is unhealthy in (target-group {tg_name}) due to (reason Health checks failed).")
        self.count_failure(svc, d)
        self.schedule_stop(svc, t, f"Task failed ELB health checks in (target-group {tg})")

    def is_up(self, t):
        return (t["lastStatus"] == "RUNNING" and t["_stop_at"] is None
                and (t["healthStatus"] == "HEALTHY" or not t["_has_hc"])
                and t["_target"] in (None, "healthy"))

    def schedule_stop(self, svc, t, reason, code="ServiceSchedulerInitiated"):
        """The scheduler stops a task: a registered target is deregistered and drains first."""
        if t["_stop_at"] is not None or t["lastStatus"] == "STOPPED":
            return
        t.update(desiredStatus="STOPPED", _stop_reason=reason, _stop_code=code)
        if t["_target"] is not None and t["lastStatus"] == "RUNNING":
            t["_target"] = "draining"
            for lb in svc["loadBalancers"]:
                self.event(svc, f"(service {svc['serviceName']}) deregistered 1 targets in (target-group {lb.get('targetGroupArn')})")
            self.event(svc, f"(service {svc['serviceName']}) has begun draining connections on 1 tasks.")
            t["_stop_at"] = now() + self.t("deregistration_delay_seconds")
        else:
            t["_stop_at"] = now() + self.t("stop_seconds")

    def stop_task(self, svc, d, t, code, reason, exit_code=None, container_reason=None):
        tnow = now()
        t.update(desiredStatus="STOPPED", lastStatus="STOPPED", stopCode=code, stoppedReason=reason,
                 stoppingAt=tnow, stoppedAt=tnow, executionStoppedAt=tnow, _stop_at=t["_stop_at"] or tnow)
        if t["_target"] not in (None, "draining"):   # exited while registered: deregistered now
            for lb in svc["loadBalancers"]:
                self.event(svc, f"(service {svc['serviceName']}) deregistered 1 targets in (target-group {lb.get('targetGroupArn')})")
        t["_target"] = None
        for c in t["containers"]:
            c["lastStatus"] = "STOPPED"
            if exit_code is not None:
                c["exitCode"] = exit_code
            if container_reason:
                c["reason"] = container_reason
        if t in d["_tasks"]:
            d["_tasks"].remove(t)
        self.event(svc, f"(service {svc['serviceName']}) has stopped 1 running tasks: (task {t['taskArn'].split('/')[-1]}).")

    # ---------- the circuit breaker's count and the service throttle logic
    def count_failure(self, svc, d):
        d["failedTasks"] += 1
        d["updatedAt"] = now()
        self.mirror_failures(d)

    def task_up(self, svc, d):
        if d["failedTasks"] and self.breaker(svc).get("resetOnHealthyTask", True):
            d["failedTasks"] = 0
            self.mirror_failures(d)

    def mirror_failures(self, d):
        sd = self.service_deployments.get(d["_sd"])
        if sd and sd.get("_target") == d["id"]:
            sd["deploymentCircuitBreaker"]["failureCount"] = d["failedTasks"]

    def start_failed(self, svc, d, tnow):
        """Tasks that never reach RUNNING are restarted with a growing delay (ECS: up to 27 minutes)."""
        d["_start_failures"] += 1
        k = d["_start_failures"]
        delay = min(self.t("restart_backoff_max_seconds"), self.t("restart_backoff_seconds") * 2 ** (k - 1))
        d["_next_launch_at"] = max(d["_next_launch_at"], tnow + delay)
        if k >= 2:
            self.event(svc, f"(service {svc['serviceName']}) is unable to consistently start tasks successfully.", kind="throttle")

    # ---------- the clock
    def tick(self):
        with self.lock:
            tnow = now()
            for svc in list(self.services.values()):
                if svc["status"] != "ACTIVE":
                    continue
                for d in list(svc["deployments"]):
                    for t in list(d["_tasks"]):
                        self.tick_task(svc, d, t, tnow)
                self.tick_service(svc, tnow)
                if svc["_task_sets"]:
                    self.tick_task_sets(svc, tnow)
            self.tick_codedeploy(tnow)
            self.prune(tnow)

    def prune(self, tnow):
        if tnow - self.pruned_at < 1.0:
            return
        self.pruned_at = tnow
        stopped = sorted((t["stoppedAt"], a) for a, t in self.tasks.items() if t["lastStatus"] == "STOPPED")
        excess = len(stopped) - STOPPED_TASKS_KEPT
        for i, (stopped_at, a) in enumerate(stopped):
            if i < excess or tnow - stopped_at > STOPPED_TASK_RETENTION:
                del self.tasks[a]

    def tick_service(self, svc, tnow):
        if not svc["deployments"]:
            return
        sd = self.service_deployments.get(svc["deployments"][0]["_sd"])
        if sd:
            self.advance(svc, sd, tnow)
        primary = svc["deployments"][0]          # a rollback may have just started
        sd = self.service_deployments.get(primary["_sd"])
        if primary["rolloutState"] == "IN_PROGRESS" and not primary["_halted"]:
            if not (self.check_breaker(svc, primary, sd) or self.check_alarms(svc, primary, sd)):
                self.launch_needed(svc, primary, sd, tnow)
        if primary["rolloutState"] == "COMPLETED" and primary.get("_scale_out") and tnow >= primary["_next_launch_at"]:
            # A desired count raised after the deployment completed (not a replacement for a task that exited).
            n = min(primary["_scale_out"], svc["desiredCount"] - len(self.unstopping(primary)))
            primary["_scale_out"] = 0
            for _ in range(max(0, n)):
                self.launch(svc, primary)
        if not self.native_in_flight(primary):
            self.stop_excess(svc, primary, svc["desiredCount"])
        if primary["rolloutState"] != "FAILED" and not primary["_halted"] and self.native_drain_allowed(primary):
            self.drain_old(svc, primary)
        self.retire_drained(svc)
        if primary.get("_bg") is not None:
            self.tick_native(svc, primary, sd, tnow)
        else:
            self.check_steady(svc, primary, sd, tnow)
        self.update_target_counts(svc, sd)

    def advance(self, svc, sd, tnow):
        """The service deployment's own timed transitions."""
        if tnow < sd["_due"]:
            return
        if sd["status"] == "PENDING":
            sd.update(status="IN_PROGRESS", startedAt=tnow, updatedAt=tnow)
        elif sd["status"] == "ROLLBACK_REQUESTED":
            self.start_rollback(svc, sd)
        elif sd["status"] == "STOP_REQUESTED":
            d = self.deployment(svc, sd["_target"])
            if d is not None:
                d.update(rolloutState="FAILED", rolloutStateReason=f"ECS deployment {d['id']} stopped.", updatedAt=tnow)
            self.end(sd, "STOPPED", sd.get("_stop_reason"))

    def active(self, sd):
        return sd is None or sd["status"] in ("IN_PROGRESS", "ROLLBACK_IN_PROGRESS")

    def launch_needed(self, svc, d, sd, tnow):
        if not self.active(sd) or tnow < d["_next_launch_at"]:
            return
        desired = svc["desiredCount"]
        max_total = max(desired, math.floor(desired * svc["deploymentConfiguration"].get("maximumPercent", 200) / 100))
        total = sum(len(self.unstopping(x)) for x in svc["deployments"])
        if d.get("_bg") is not None:   # blue/green: green starts at full size next to blue
            max_total = total - len(self.unstopping(d)) + desired
        need = desired - len(self.unstopping(d))
        for _ in range(max(0, min(need, max_total - total))):
            self.launch(svc, d)

    def stop_excess(self, svc, d, desired):
        """A lower desired count (UpdateService, Application Auto Scaling) stops the tasks beyond
        it: those not yet running first, then the newest."""
        live = self.unstopping(d)
        if len(live) <= desired:
            return
        live.sort(key=lambda t: (t["lastStatus"] == "RUNNING", -t["createdAt"]))
        for t in live[:len(live) - desired]:
            self.schedule_stop(svc, t, f"Scaling activity initiated by (deployment {d['id']})")

    def unstopping(self, d):
        return [t for t in d["_tasks"] if t["_stop_at"] is None and t["lastStatus"] != "STOPPED"]

    def up_count(self, d):
        return sum(1 for t in d["_tasks"] if self.is_up(t))

    def drain_old(self, svc, primary):
        """Stops older deployments' tasks as the primary's come up, keeping minimumHealthyPercent."""
        desired = svc["desiredCount"]
        up = self.up_count(primary)
        min_healthy = math.ceil(desired * svc["deploymentConfiguration"].get("minimumHealthyPercent", 100) / 100)
        for d in svc["deployments"][1:]:
            keep = max(0, min_healthy - up) if up < desired else 0
            for t in self.unstopping(d)[keep:]:
                self.schedule_stop(svc, t, f"Scaling activity initiated by (deployment {primary['id']})")

    def retire_drained(self, svc):
        for d in svc["deployments"][1:]:
            if not self.live_tasks(d):
                d.update(status="INACTIVE", updatedAt=now())
        svc["deployments"] = [d for d in svc["deployments"] if d["status"] != "INACTIVE"]

    # ---------- failure detection
    def check_breaker(self, svc, d, sd):
        br = self.breaker(svc)
        if not br.get("enable") or d["failedTasks"] < self.threshold(svc):
            return False
        self.fail(svc, d, "ECS deployment circuit breaker: tasks failed to start.", "tasks failed to start")
        if sd:
            sd["deploymentCircuitBreaker"]["status"] = "TRIGGERED"
        self.after_failure(svc, d, sd, br.get("rollback"), "Circuit breaker triggered: tasks failed to start.")
        return True

    def check_alarms(self, svc, d, sd):
        cfg = self.alarm_config(svc)
        if cfg is None or d["_rollback"] or sd is None or sd["status"] != "IN_PROGRESS":
            return False
        firing = [n for n in cfg["alarmNames"] if self.alarms.get(n) == "ALARM"]
        if not firing:
            return False
        names = ", ".join(firing)
        sd["alarms"].update(status="TRIGGERED", triggeredAlarmNames=firing)
        self.fail(svc, d, f"ECS deployment {d['id']} failed: alarm(s) in ALARM state: {names}.", "alarm detected")
        self.after_failure(svc, d, sd, cfg.get("rollback"), f"CloudWatch alarm(s) in ALARM state: {names}.")
        return True

    def fail(self, svc, d, reason, why):
        d.update(rolloutState="FAILED", rolloutStateReason=reason, updatedAt=now())
        self.event(svc, f"(service {svc['serviceName']}) (deployment {d['id']}) deployment failed: {why}.")

    def after_failure(self, svc, d, sd, rollback, reason):
        """A FAILED deployment launches nothing more. Then: ROLLBACK_FAILED if it was the rollback;
        STOPPED without the rollback option; a rollback to the last COMPLETED deployment; or,
        with none, a stall (the service deployment stays IN_PROGRESS)."""
        if sd is None:
            return
        if d["_rollback"]:
            self.end(sd, "ROLLBACK_FAILED", f"The rollback failed: {d['rolloutStateReason']}")
        elif not rollback:
            self.end(sd, "STOPPED", d["rolloutStateReason"])
        elif sd.get("_rollback_to") is None:
            sd.update(statusReason=f"{d['rolloutStateReason']} No deployment is in the COMPLETED state to roll "
                                   "back to: the deployment is stalled.", updatedAt=now())
        else:
            self.request_rollback(sd, reason, sd["_rollback_to"])

    # ---------- rollback and stop
    def request_rollback(self, sd, reason, target):
        sd.update(status="ROLLBACK_REQUESTED", updatedAt=now(), _due=now() + self.t("pending_seconds"),
                  _rollback_reason=reason, _rollback_target=target)

    def start_rollback(self, svc, sd):
        target = sd["_rollback_target"]
        td = self.task_definition(target["td"])
        failed = svc["deployments"][0]
        d = self.new_deployment(svc, td, sd["serviceDeploymentArn"], target["rev"], rollback=True)
        sd.update(status="ROLLBACK_IN_PROGRESS", updatedAt=now(),
                  rollback={"reason": sd["_rollback_reason"], "startedAt": now(), "serviceRevisionArn": target["rev"]})
        # The deployment rolled back to is IN_PROGRESS again: not a rollback target until it completes.
        svc["_last_completed"] = None
        self.event(svc, f"(service {svc['serviceName']}) rolling back to deployment {d['id']}.")
        for t in self.unstopping(failed):
            self.schedule_stop(svc, t, f"Scaling activity initiated by (deployment {d['id']})")

    def stop_service_deployment(self, sd, stop_type):
        if sd["status"] in ENDED:
            raise ApiError("ConflictException", f"The service deployment is {sd['status']} and cannot be stopped.")
        if sd["status"] in ("STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"):
            return   # already stopping or rolling back: that continues
        svc = self.service_by_arn(sd["serviceArn"])
        d = self.deployment(svc, sd["_target"])
        if stop_type == "ROLLBACK":
            target = sd.get("_rollback_to") or sd.get("_source")
            if target is None:
                raise ApiError("InvalidParameterException", "The service has no previous service revision to roll back to.")
            if d is not None:
                d.update(_halted=True, rolloutState="FAILED", updatedAt=now(),
                         rolloutStateReason=f"ECS deployment {d['id']} stopped: rollback requested.")
            self.request_rollback(sd, "Service deployment stopped with stop type ROLLBACK.", target)
        else:
            if d is not None:
                d["_halted"] = True
            sd.update(status="STOP_REQUESTED", updatedAt=now(), _due=now() + self.t("pending_seconds"),
                      _stop_reason="Service deployment stopped with stop type ABORT.")

    # ---------- steady state, bake, success
    def bake_seconds(self, svc, d):
        """An explicit bake keeps rolloutState IN_PROGRESS; None means the default short bake after COMPLETED."""
        if d["_rollback"]:
            return None
        minutes = svc["deploymentConfiguration"].get("bakeTimeInMinutes")
        if minutes is not None:
            return float(minutes) * self.t("ecs_minute_seconds")
        return self.t("alarm_bake_seconds") if self.alarm_config(svc) else None

    def check_steady(self, svc, d, sd, tnow):
        if d["rolloutState"] == "IN_PROGRESS" and not d["_halted"]:
            steady = len(svc["deployments"]) == 1 and self.up_count(d) >= svc["desiredCount"] and self.active(sd)
            if not steady:
                d["_steady_since"] = None
                return
            d["_steady_since"] = d["_steady_since"] or tnow
            steady_at = d["_steady_since"] + self.t("steady_seconds")
            bake = self.bake_seconds(svc, d)
            if tnow >= steady_at + (bake or 0):
                self.complete(svc, d, tnow)
                if bake is not None:
                    self.succeed(sd)
        elif d["rolloutState"] == "COMPLETED" and sd and tnow >= d["_completed_at"] + self.t("bake_seconds"):
            self.succeed(sd)

    def complete(self, svc, d, tnow):
        d.update(rolloutState="COMPLETED", rolloutStateReason=f"ECS deployment {d['id']} completed.",
                 updatedAt=tnow, _completed_at=tnow)
        svc["_last_completed"] = {"td": d["taskDefinition"], "rev": d["_rev"]}
        self.event(svc, f"(service {svc['serviceName']}) (deployment {d['id']}) deployment completed.")
        self.event(svc, f"(service {svc['serviceName']}) has reached a steady state.")

    def succeed(self, sd):
        if sd and sd["status"] == "IN_PROGRESS":
            self.end(sd, "SUCCESSFUL")
        elif sd and sd["status"] == "ROLLBACK_IN_PROGRESS":
            self.end(sd, "ROLLBACK_SUCCESSFUL")

    def update_target_counts(self, svc, sd):
        d = self.deployment(svc, sd["_target"]) if sd else None
        summary = self.revision_summary(d) if d else None
        if summary:
            sd["targetServiceRevision"] = summary
