"""HTTP: the ECS, CodeDeploy and Application Auto Scaling JSON endpoint (POST /, by
`X-Amz-Target`), the control API (/_sim/...), and the app behind each
service (GET /app/<cluster>/<service>/health), which answers like the load balancer in front
of the service's tasks.

Regions: an AWS request goes to the region its SigV4 credential scope names (the default region
without one); the control API takes `?region=<region>` and the app endpoint
`/app/@<region>/<cluster>/<service>/...` (no region: the default one). `GET /_sim/calls` and
`GET /_sim/log` cover every region unless `?region=` narrows them."""
import json
import sys
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .autoscaling import AS_PREFIX
from .codedeploy import CD_PREFIX
from .regions import BadRegion
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
        "region": s.region,
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


def app_route(parts):
    """(region or None, cluster, service, listener) of an app endpoint's path parts, or None:
    `app/[@region/]cluster/service/health` or `.../test/health`. No cluster name starts with @."""
    if len(parts) < 2 or parts[0] != "app":
        return None
    region, rest = (parts[1][1:], parts[2:]) if parts[1].startswith("@") else (None, parts[1:])
    if len(rest) == 3 and rest[2] == "health":
        return region, rest[0], rest[1], "production"
    if len(rest) == 4 and rest[2:] == ["test", "health"]:
        return region, rest[0], rest[1], "test"
    return None


class Handler(BaseHTTPRequestHandler):
    regions = None
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

    def route(self):
        """(path, the `region` query parameter or None)."""
        url = urlsplit(self.path)
        return url.path, (parse_qs(url.query).get("region") or [None])[0]

    def do_POST(self):
        try:
            path, region = self.route()
            if path.startswith("/_sim/"):
                return self.control(path[len("/_sim/"):], region, self.body())
            sim = self.regions.for_request(self.headers.get("Authorization"))
            target = self.headers.get("X-Amz-Target", "")
            if target.startswith(CD_PREFIX):
                return self.send_json(200, sim.op(target[len(CD_PREFIX):], self.body(), "codedeploy"))
            if target.startswith(AS_PREFIX):
                return self.send_json(200, sim.op(target[len(AS_PREFIX):], self.body(), "application-autoscaling"))
            if not target.startswith(TARGET_PREFIX):
                raise ApiError("UnknownOperationException", f"Unknown target {target!r}.")
            self.send_json(200, sim.op(target[len(TARGET_PREFIX):], self.body()))
        except ApiError as e:
            self.send_json(e.status, {"__type": e.code, "message": e.message}, {"x-amzn-ErrorType": e.code})
        except Exception as e:  # a bug here must look like a server error, not hang the client
            self.send_json(500, {"__type": "ServerException", "message": f"simulator error: {e!r}"},
                           {"x-amzn-ErrorType": "ServerException"})

    def control(self, what, region, req):
        handler = CONTROLS.get(what)
        if handler is None:
            return self.send_json(404, {"message": f"unknown control {what}"})
        try:
            sim = self.regions.get(region)
            with sim.lock:
                extra = handler(sim, req)
        except (BadControl, BadRegion, TypeError, ValueError) as e:
            return self.send_json(400, {"message": f"/_sim/{what}: {e}"})
        self.send_json(200, {"ok": True} | (extra or {}))

    def do_GET(self):
        path, region = self.route()
        try:
            app = app_route(path.strip("/").split("/"))
            if app is not None:
                sim = self.regions.get(app[0])
                return self.send_json(*health(sim, *app[1:]))
            if path == "/_sim/calls":
                sims = [self.regions.get(region)] if region else self.regions.all()
                return self.send_json(200, dict(sum((Counter(s.calls) for s in sims), Counter())))
            if path == "/_sim/log":
                if region:
                    self.regions.get(region)   # a malformed region is refused
                log = [{"at": round(t, 4), "operation": op, "region": r, **({"items": n} if n is not None else {})}
                       for t, op, r, n in list(self.regions.shared["call_log"])]
                return self.send_json(200, [e for e in log if region in (None, e["region"])])
            if path == "/_sim/state":
                sim = self.regions.get(region)
                with sim.lock:
                    state = state_of(sim)
                return self.send_json(200, state)
        except BadRegion as e:
            status = 404 if path.startswith("/app/") else 400
            return self.send_json(status, {"status": "error", "message": str(e)} if status == 404 else {"message": str(e)})
        self.send_json(404, {"message": "not found"})


def serve(regions, host, port):
    """Starts the HTTP server and the clock (one for every region); returns (server, stop event)."""
    Handler.regions = regions
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    stop = threading.Event()

    def clock():
        while not stop.is_set():
            try:
                regions.tick()
            except Exception as e:  # keep the clock running; the error shows in the log
                sys.stderr.write(f"ecs-sim: tick failed: {e!r}\n")
            stop.wait(0.05)

    threading.Thread(target=clock, daemon=True).start()
    return server, stop
