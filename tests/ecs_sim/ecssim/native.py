"""ECS-native blue/green, linear and canary deployments (`deploymentConfiguration.strategy`).

A deployment of such a service walks the service deployment's `lifecycleStage`:
RECONCILE_SERVICE, PRE_SCALE_UP, SCALE_UP (the green revision starts at full size next to the
blue one), POST_SCALE_UP, TEST_TRAFFIC_SHIFT (the test listener moves to green),
POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (all at once, by canary or linearly),
POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME (blue still runs: a rollback is a switch back),
CLEAN_UP (blue drains), then SUCCESSFUL. The circuit breaker, alarms and
StopServiceDeployment(ROLLBACK) roll back as for a rolling update.
"""
from .util import ApiError, now

STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
STAGES = ["RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT",
          "POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"]


class Native:
    def strategy(self, svc):
        return svc["deploymentConfiguration"].get("strategy") or "ROLLING"

    def begin_native(self, svc, d, sd):
        """Marks a new deployment of a blue/green, linear or canary service (not its first one)."""
        if self.strategy(svc) in STRATEGIES and len(svc["deployments"]) > 1 and not d["_rollback"]:
            d["_bg"] = {"stage": STAGES[0], "at": now(), "weight": 0.0, "test": False}
            sd["lifecycleStage"] = STAGES[0]

    def native_in_flight(self, d):
        bg = d.get("_bg")
        return bg is not None and bg["stage"] != "DONE"

    def minute(self):
        return self.t("ecs_minute_seconds")

    def tick_native(self, svc, d, sd, tnow):
        bg = d["_bg"]
        if bg["stage"] == "DONE" or sd is None or sd["status"] != "IN_PROGRESS" or d["rolloutState"] != "IN_PROGRESS":
            return
        stage, elapsed = bg["stage"], tnow - bg["at"]
        dc = svc["deploymentConfiguration"]
        if stage == "SCALE_UP":
            done = self.up_count(d) >= svc["desiredCount"]
        elif stage == "TEST_TRAFFIC_SHIFT":
            bg["test"] = True
            done = elapsed >= self.t("stage_seconds")
        elif stage == "PRODUCTION_TRAFFIC_SHIFT":
            bg["weight"] = self.native_weight(svc, elapsed)
            sd["_max_weight"] = max(sd.get("_max_weight", 0.0), bg["weight"])
            done = bg["weight"] >= 100.0
        elif stage == "BAKE_TIME":
            done = elapsed >= float(dc.get("bakeTimeInMinutes") or 0) * self.minute()
        elif stage == "CLEAN_UP":
            done = len(svc["deployments"]) == 1
        else:
            done = elapsed >= self.t("stage_seconds")
        if not done or elapsed < self.t("stage_seconds"):   # every stage is visible for a moment
            return
        if not self.hooks_done(svc, d, sd, stage, tnow):
            return
        i = STAGES.index(stage) + 1
        if i < len(STAGES):
            bg.update(stage=STAGES[i], at=tnow)
            if STAGES[i] == "TEST_TRAFFIC_SHIFT":
                bg["test"] = True
            if STAGES[i] == "PRODUCTION_TRAFFIC_SHIFT":
                bg["weight"] = self.native_weight(svc, 0.0)
                sd["_max_weight"] = max(sd.get("_max_weight", 0.0), bg["weight"])
            sd.update(lifecycleStage=STAGES[i], updatedAt=tnow)
            return
        bg["stage"] = "DONE"
        self.complete(svc, d, tnow)
        self.succeed(sd)

    def hooks_done(self, svc, d, sd, stage, tnow):
        """Runs the stage's lifecycle hooks, in order: a PAUSE hook waits for
        ContinueServiceDeployment (or its timeout action); an AWS_LAMBDA hook is reported
        IN_PROGRESS, then SUCCEEDED (no function is called). True when all are done."""
        bg = d["_bg"]
        hooks = [h for h in svc["deploymentConfiguration"].get("lifecycleHooks") or []
                 if stage in (h.get("lifecycleStages") or [])]
        details = bg.setdefault("hooks", {})
        for i, h in enumerate(hooks):
            key = f"{stage}/{i}"
            det = details.get(key)
            timeout = h.get("timeoutConfiguration") or {}
            if det is None:
                pause = h.get("targetType") == "PAUSE"
                det = {"hookId": self.new_id(), "targetType": h.get("targetType", "AWS_LAMBDA"),
                       "status": "AWAITING_ACTION" if pause else "IN_PROGRESS",
                       "expiresAt": tnow + float(timeout.get("timeoutInMinutes", 60)) * self.minute(),
                       "timeoutAction": timeout.get("action", "ROLLBACK"), "_started": tnow}
                if h.get("hookTargetArn"):
                    det["targetArn"] = h["hookTargetArn"]
                details[key] = det
                sd["lifecycleHookDetails"] = [x for x in details.values() if x is det or x["status"] in
                                              ("AWAITING_ACTION", "IN_PROGRESS")]
                sd["updatedAt"] = tnow
                return False
            if det["status"] == "SUCCEEDED":
                continue
            if det["status"] == "IN_PROGRESS" and tnow - det["_started"] >= self.t("stage_seconds"):
                det["status"] = "SUCCEEDED"
                continue
            if tnow >= det["expiresAt"] and det["status"] in ("AWAITING_ACTION", "IN_PROGRESS"):
                det["status"] = "TIMED_OUT"
                if det["timeoutAction"] == "CONTINUE":
                    continue
                self.stop_service_deployment(sd, "ROLLBACK")
            return False
        return True

    def continue_service_deployment(self, sd, hook_id, action):
        d = next((x for s in self.services.values() for x in s["deployments"] if x["id"] == sd.get("_target")), None)
        det = next((h for h in ((d or {}).get("_bg") or {}).get("hooks", {}).values() if h["hookId"] == hook_id), None)
        if det is None or det["status"] != "AWAITING_ACTION":
            raise ApiError("InvalidParameterException",
                           f"The service deployment is not paused at lifecycle hook {hook_id}.")
        if action == "ROLLBACK":
            det["status"] = "FAILED"
            self.stop_service_deployment(sd, "ROLLBACK")
        else:
            det["status"] = "SUCCEEDED"

    def native_weight(self, svc, elapsed):
        """Production traffic on green, `elapsed` seconds into PRODUCTION_TRAFFIC_SHIFT."""
        dc, strategy = svc["deploymentConfiguration"], self.strategy(svc)
        if strategy == "CANARY":
            c = dc.get("canaryConfiguration") or {}
            after = float(c.get("canaryBakeTimeInMinutes", 10)) * self.minute()
            return 100.0 if elapsed >= after else float(c.get("canaryPercent", 5.0))
        if strategy == "LINEAR":
            c = dc.get("linearConfiguration") or {}
            step = float(c.get("stepPercent", 10.0))
            every = float(c.get("stepBakeTimeInMinutes", 6)) * self.minute()
            steps = 1 + (int(elapsed // every) if every > 0 else 100)
            return min(100.0, steps * step)
        return 100.0

    def native_drain_allowed(self, d):
        bg = d.get("_bg")
        return bg is None or bg["stage"] in ("CLEAN_UP", "DONE")

    def native_serving(self, svc, listener):
        """Blue and green behind the production and test listeners while a deployment is in flight;
        None when no blue/green deployment is in flight."""
        green = svc["deployments"][0] if svc["deployments"] else None
        if green is None or not self.native_in_flight(green):
            return None
        bg = green["_bg"]
        healthy = lambda d: [t for t in d["_tasks"] if t["lastStatus"] == "RUNNING" and t["_target"] in ("healthy", None)
                             and self.is_up(t)]
        blue = [t for d in svc["deployments"][1:] for t in healthy(d)]
        if listener == "test":
            return healthy(green) if bg["test"] else blue
        self.rr[(svc["serviceArn"], "native")] += 1
        n, w = self.rr[(svc["serviceArn"], "native")], bg["weight"]
        pick_green = w > 0 and (int(n * w / 100) != int((n - 1) * w / 100) or not blue)
        return healthy(green) if pick_green else blue
