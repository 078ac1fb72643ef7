"""HTTP: the ECS, CodeDeploy and Application Auto Scaling JSON endpoint (POST /, by
`X-Amz-Target`), the control API (/_sim/...), and the app behind each
service (GET /app/<cluster>/<service>/health), which answers like the load balancer in front
of the service's tasks."""
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .autoscaling import AS_PREFIX
from .codedeploy import CD_PREFIX
from .util import ApiError

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class BadControl(Exception):
    pass


def need(req, key):
    if key not in req:
        raise BadControl(f"missing {key!r}")
    return req[key]


# ---------- control API: each handler changes the simulator under its lock
def control_images(s, req):
    s.images[need(req, "image")] = {k: v for k, v in req.items() if k != "image"}


def control_faults(s, req):
    s.faults[need(req, "operation")] = [req.get("error", "ThrottlingException"), int(req.get("count", 1))]


def control_timing(s, req):
    s.timing.update({k: float(v) for k, v in req.items() if k in s.timing})
    ignored = sorted(set(req) - set(s.timing))
    return {"ignored": ignored} if ignored else None


def control_lag(s, req):
    seconds = float(need(req, "seconds"))
    if "service" in req:
        s.lag["services"][(req.get("cluster", "default"), req["service"])] = seconds
    else:
        s.lag["default"] = seconds


def control_deny(s, req):
    s.denied = set(need(req, "operations"))


def control_throttle(s, req):
    s.set_rate_limit(need(req, "operation"), req.get("per_second"), req.get("burst"))


def control_alarms(s, req):
    state = need(req, "state")
    if state not in ALARM_STATES:
        raise BadControl(f"state must be one of {ALARM_STATES}")
    s.alarms[need(req, "name")] = state


def control_codedeploy(s, req):
    unknown = sorted(set(req) - set(s.cd_knobs))
    if unknown:
        raise BadControl(f"unknown keys {unknown}; known: {sorted(s.cd_knobs)}")
    s.cd_knobs.update({k: bool(v) for k, v in req.items()})


def control_capacity(s, req):
    cluster = need(req, "cluster")
    if need(req, "available"):
        s.no_capacity.discard(cluster)
    else:
        s.no_capacity.add(cluster)


def control_scaling(s, req):
    return s.as_trigger(req)


CONTROLS = {"images": control_images, "faults": control_faults, "timing": control_timing, "lag": control_lag,
            "deny": control_deny, "throttle": control_throttle, "alarms": control_alarms,
            "capacity": control_capacity, "codedeploy": control_codedeploy, "scaling": control_scaling}


def state_of(s):
    return {
        "services": [s.service_shape(v) for v in s.services.values()],
        "tasks": [s.public(t) for t in s.tasks.values()],
        "serviceDeployments": [s.sd_shape(v) for v in s.service_deployments.values()],
        "images": s.images, "timing": s.timing, "alarms": s.alarms, "denied": sorted(s.denied),
        "throttles": {op: {"per_second": b.rate, "burst": b.burst} for op, b in s.throttles.items()},
        "lag": {"default": s.lag["default"], "services": [{"cluster": c, "service": n, "seconds": v}
                                                          for (c, n), v in s.lag["services"].items()]},
        "clustersWithoutCapacity": sorted(s.no_capacity),
        "codedeployDeployments": [s.cd_shape(d) for d in s.cd_deployments.values()],
        # The most production traffic each deployment ever gave its replacement (not an AWS field).
        "codedeployMaxWeight": {i: d.get("_max_weight", 0.0) for i, d in s.cd_deployments.items()},
        # The same for ECS-native blue/green service deployments, by ARN.
        "nativeMaxWeight": {a: sd.get("_max_weight", 0.0) for a, sd in s.service_deployments.items()},
        "scalableTargets": [dict(s.as_shape(t), Tags=dict(t["_tags"])) for t in s.as_targets.values()],
        # Every POST /_sim/scaling and its outcome, including those that did not happen (not an AWS record).
        "scalingTriggers": list(s.as_triggers),
    }


# ---------- the app behind a service
def serving_tasks(s, svc, listener="production"):
    if svc["_task_sets"]:
        return s.cd_serving(svc, listener)
    native = s.native_serving(svc, listener)
    if native is not None:
        return native
    if listener != "production":
        # A blue/green service's test listener serves the production revision between deployments.
        return None if s.strategy(svc) not in ("BLUE_GREEN", "LINEAR", "CANARY") else serving_tasks(s, svc)
    tasks = [t for d in svc["deployments"] for t in d["_tasks"] if t["lastStatus"] == "RUNNING"]
    if svc.get("loadBalancers"):
        return [t for t in tasks if t["_target"] == "healthy"]   # registered, healthy, not draining
    return [t for t in tasks if t["healthStatus"] == "HEALTHY" or not t["_has_hc"]]


def health(s, cluster, service, listener="production"):
    with s.lock:
        svc = s.services.get((cluster, service))
        if svc is None:
            return 404, {"status": "error", "message": "no such service"}
        up = serving_tasks(s, svc, listener)
        if up is None:
            return 404, {"status": "error", "message": "this service has no test listener"}
        up = sorted(up, key=lambda t: t["createdAt"])
        if not up:
            return 503, {"status": "error", "message": "no healthy targets"}
        s.rr[(cluster, service)] += 1
        t = up[s.rr[(cluster, service)] % len(up)]
        if t["_behavior"] == "smoke-error":
            return 500, {"status": "error", "version": t["_version"]}
        return 200, {"status": "ok", "version": t["_version"], "taskDefinition": t["taskDefinitionArn"]}


class Handler(BaseHTTPRequestHandler):
    sim = None
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
        return json.loads((self.rfile.read(n) if n else b"") or b"{}")

    def do_POST(self):
        try:
            if self.path.startswith("/_sim/"):
                return self.control(self.path[len("/_sim/"):], self.body())
            target = self.headers.get("X-Amz-Target", "")
            if target.startswith(CD_PREFIX):
                return self.send_json(200, self.sim.op(target[len(CD_PREFIX):], self.body(), "codedeploy"))
            if target.startswith(AS_PREFIX):
                return self.send_json(200, self.sim.op(target[len(AS_PREFIX):], self.body(), "application-autoscaling"))
            if not target.startswith(TARGET_PREFIX):
                raise ApiError("UnknownOperationException", f"Unknown target {target!r}.")
            self.send_json(200, self.sim.op(target[len(TARGET_PREFIX):], self.body()))
        except ApiError as e:
            self.send_json(e.status, {"__type": e.code, "message": e.message}, {"x-amzn-ErrorType": e.code})
        except Exception as e:  # a bug here must look like a server error, not hang the client
            self.send_json(500, {"__type": "ServerException", "message": f"simulator error: {e!r}"},
                           {"x-amzn-ErrorType": "ServerException"})

    def control(self, what, req):
        handler = CONTROLS.get(what)
        if handler is None:
            return self.send_json(404, {"message": f"unknown control {what}"})
        try:
            with self.sim.lock:
                extra = handler(self.sim, req)
        except (BadControl, TypeError, ValueError) as e:
            return self.send_json(400, {"message": f"/_sim/{what}: {e}"})
        self.send_json(200, {"ok": True} | (extra or {}))

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if len(parts) == 4 and parts[0] == "app" and parts[3] == "health":
            return self.send_json(*health(self.sim, parts[1], parts[2]))
        if len(parts) == 5 and parts[0] == "app" and parts[3] == "test" and parts[4] == "health":
            return self.send_json(*health(self.sim, parts[1], parts[2], "test"))
        if self.path == "/_sim/calls":
            return self.send_json(200, dict(self.sim.calls))
        if self.path == "/_sim/log":
            return self.send_json(200, [{"at": round(t, 4), "operation": op} for t, op in list(self.sim.call_log)])
        if self.path == "/_sim/state":
            with self.sim.lock:
                state = state_of(self.sim)
            return self.send_json(200, state)
        self.send_json(404, {"message": "not found"})


def serve(sim, host, port):
    """Starts the HTTP server and the clock; returns (server, stop event)."""
    Handler.sim = sim
    server = ThreadingHTTPServer((host, port), Handler)
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
    return server, stop
