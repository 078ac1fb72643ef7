"""The ECS simulator against the official AWS tools: boto3 drives it, every raw answer is checked
against botocore's ECS service model (field names, types, enum values), and the AWS CLI parses
it too. Run: python3 -m pytest -q tests/ecs_sim
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.session
from botocore.config import Config
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = botocore.session.get_session().get_service_model("ecs")
MODELS = {"ecs": MODEL, "codedeploy": botocore.session.get_session().get_service_model("codedeploy"),
          "application-autoscaling": botocore.session.get_session().get_service_model("application-autoscaling")}
SCALE = 0.5   # every simulated duration is halved to keep the suite short


def start_sim(*args):
    """A simulator on a free port (--port 0), loopback only; returns (endpoint, process)."""
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "ecs_sim.py"), "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("ECS_SIM_ENDPOINT=http://127.0.0.1:"), line
    return line.split("=", 1)[1], p


@pytest.fixture
def make_sim():
    started = []

    def make(*args):
        endpoint, p = start_sim(*(args if "--time-scale" in args else ("--time-scale", str(SCALE), *args)))
        started.append(p)
        return endpoint
    yield make
    for p in started:
        p.terminate()
        p.wait(timeout=10)


@pytest.fixture
def sim(make_sim):
    return make_sim()


def ecs(endpoint):
    # Own retry settings: the world's environment may set AWS_MAX_ATTEMPTS low.
    return boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def raw(endpoint, op, body, service="ecs"):
    """The simulator's answer as bytes on the wire, validated against the service model (ECS, or
    CodeDeploy with service="codedeploy", Application Auto Scaling with service="application-autoscaling")."""
    model = MODELS[service]
    req = urllib.request.Request(endpoint + "/", data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": f"{model.metadata['targetPrefix']}.{op}", "Content-Type": "application/x-amz-json-1.1"})
    try:
        with urllib.request.urlopen(req) as r:
            assert r.headers["Content-Type"] == "application/x-amz-json-1.1"
            out = json.loads(r.read())
    except urllib.error.HTTPError as e:
        err = json.loads(e.read())
        known = {s.name for s in model.operation_model(op).error_shapes} | {"ThrottlingException", "ServerException", "ClientException"}
        assert err["__type"] in known, f"{op}: undocumented error {err['__type']}"
        e.error = err   # the body is read: keep it for the caller
        raise
    shape = model.operation_model(op).output_shape
    if shape is None:
        assert out == {}, f"{op}: the model has no output, got {out!r}"
    else:
        check_shape(out, shape, op)
    return out


def check_shape(value, shape, path):
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: expected an object"
        for k in shape.required_members:
            assert k in value, f"{path}: required member {k} of {shape.name} is missing"
        for k, v in value.items():
            assert k in shape.members, f"{path}.{k}: not a member of {shape.name}"
            check_shape(v, shape.members[k], f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: expected a list"
        for i, v in enumerate(value):
            check_shape(v, shape.member, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: expected a map"
    elif t == "string":
        assert isinstance(value, str), f"{path}: expected a string, got {value!r}"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} is not one of {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected an integer"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: expected a boolean"
    elif t in ("double", "float"):
        assert isinstance(value, (int, float)), f"{path}: expected a number"
    elif t == "timestamp":
        assert isinstance(value, (int, float)), f"{path}: timestamps are epoch seconds in awsJson"


def control(endpoint, what, body):
    req = urllib.request.Request(f"{endpoint}/_sim/{what}", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()


def health(endpoint, cluster, service, listener=""):
    try:
        with urllib.request.urlopen(f"{endpoint}/app/{cluster}/{service}/{listener}health") as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef"
LB = [{"targetGroupArn": TG, "containerName": "web", "containerPort": 8080}]


def setup_service(endpoint, image="repo@sha256:" + "1" * 64, version="1.0.0", breaker=True, behavior="healthy",
                  wait_steady=True, **create):
    """Cluster `shop`, service `web` (desired 2, circuit breaker with rollback unless breaker=False)
    running `image`; extra CreateService arguments in `create` (loadBalancers, launchType, ...)."""
    control(endpoint, "images", {"image": image, "version": version, "behavior": behavior})
    c = ecs(endpoint)
    c.create_cluster(clusterName="shop")
    td = c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image, "essential": True}],
                                    tags=[{"key": "team", "value": "shop"}])["taskDefinition"]["taskDefinitionArn"]
    dc = {"maximumPercent": 200, "minimumHealthyPercent": 100,
          "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker}}
    dc.update(create.pop("deploymentConfiguration", {}))
    create.setdefault("desiredCount", 2)
    c.create_service(cluster="shop", serviceName="web", taskDefinition=td, deploymentConfiguration=dc,
                     networkConfiguration={"awsvpcConfiguration": {"subnets": ["s"], "securityGroups": ["g"]}}, **create)
    if wait_steady:
        wait(lambda: steady(c))
    return c, td


def describe(c):
    return c.describe_services(cluster="shop", services=["web"])["services"][0]


def sim_state(endpoint):
    with urllib.request.urlopen(endpoint + "/_sim/state") as r:
        return json.loads(r.read())


def tasks_of(c, td, status="STOPPED"):
    arns = c.list_tasks(cluster="shop", serviceName="web", desiredStatus=status)["taskArns"]
    tasks = c.describe_tasks(cluster="shop", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["taskDefinitionArn"] == td]


def messages(c):
    return [e["message"] for e in describe(c)["events"]]


def steady(c):
    d = describe(c)["deployments"]
    return len(d) == 1 and d[0]["rolloutState"] == "COMPLETED"


def wait(cond, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def new_revision(c, endpoint, image, version, behavior):
    control(endpoint, "images", {"image": image, "version": version, "behavior": behavior})
    return c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image}])["taskDefinition"]["taskDefinitionArn"]


def service_deployment(c, td):
    for b in c.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]:
        rev = c.describe_service_revisions(serviceRevisionArns=[b["targetServiceRevisionArn"]])["serviceRevisions"][0]
        if rev["taskDefinition"] == td:
            return b["serviceDeploymentArn"]


def sd_status(c, arn):
    return c.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]


def test_answers_match_the_service_model(sim):
    c, td = setup_service(sim)
    for op, body in [
        ("DescribeServices", {"cluster": "shop", "services": ["web", "missing"]}),
        ("DescribeTaskDefinition", {"taskDefinition": "web", "include": ["TAGS"]}),
        ("ListTaskDefinitions", {"familyPrefix": "web"}),
        ("DescribeClusters", {"clusters": ["shop"]}),
        ("ListTasks", {"cluster": "shop", "serviceName": "web"}),
        ("ListServiceDeployments", {"cluster": "shop", "service": "web"}),
    ]:
        raw(sim, op, body)
    tasks = raw(sim, "ListTasks", {"cluster": "shop", "serviceName": "web"})["taskArns"]
    raw(sim, "DescribeTasks", {"cluster": "shop", "tasks": tasks})
    sds = raw(sim, "ListServiceDeployments", {"cluster": "shop", "service": "web"})["serviceDeployments"]
    full = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [sds[0]["serviceDeploymentArn"]]})
    raw(sim, "DescribeServiceRevisions", {"serviceRevisionArns": [full["serviceDeployments"][0]["targetServiceRevision"]["arn"]]})
    with pytest.raises(urllib.error.HTTPError):
        raw(sim, "DescribeServices", {"cluster": "nope", "services": ["web"]})
    svc = c.describe_services(cluster="shop", services=["web", "missing"])
    assert svc["failures"][0]["reason"] == "MISSING"
    assert hasattr(svc["services"][0]["createdAt"], "year"), "boto3 parses timestamps"
    assert c.describe_task_definition(taskDefinition=td, include=["TAGS"])["tags"] == [{"key": "team", "value": "shop"}]


def test_healthy_rollout_succeeds_and_health_follows(sim):
    c, _ = setup_service(sim)
    status, body = health(sim, "shop", "web")
    assert (status, body["version"], body["status"]) == (200, "1.0.0", "ok")
    td2 = new_revision(c, sim, "repo@sha256:" + "2" * 64, "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn)["status"] == "SUCCESSFUL")
    svc = c.describe_services(cluster="shop", services=["web"])["services"][0]
    assert svc["taskDefinition"] == td2
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert any("steady state" in e["message"] for e in svc["events"])
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"2.0.0"}


def test_crash_trips_the_circuit_breaker_and_rolls_back(sim):
    c, td1 = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "3" * 64, "3.0.0", "crash")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    sd = wait(lambda: (lambda s: s if s["status"] == "ROLLBACK_SUCCESSFUL" else None)(sd_status(c, arn)))
    assert sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert sd["deploymentCircuitBreaker"]["failureCount"] >= sd["deploymentCircuitBreaker"]["threshold"] == 3
    assert "Circuit breaker" in sd["rollback"]["reason"]
    svc = c.describe_services(cluster="shop", services=["web"])["services"][0]
    assert svc["taskDefinition"] == td1
    stopped = c.list_tasks(cluster="shop", serviceName="web", desiredStatus="STOPPED")["taskArns"]
    tasks = c.describe_tasks(cluster="shop", tasks=stopped)["tasks"]
    crashed = [t for t in tasks if t["taskDefinitionArn"] == td2]
    assert crashed and all(t["stopCode"] == "EssentialContainerExited" for t in crashed)
    assert crashed[0]["containers"][0]["exitCode"] == 1
    assert any("deployment failed: tasks failed to start" in e["message"] for e in svc["events"])


def test_a_rollback_that_fails(sim):
    old = "repo@sha256:" + "1" * 64
    c, _ = setup_service(sim, image=old)
    control(sim, "images", {"image": old, "version": "1.0.0", "behavior": "crash"})
    td2 = new_revision(c, sim, "repo@sha256:" + "4" * 64, "4.0.0", "crash")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn)["status"] == "ROLLBACK_FAILED")


def test_stop_service_deployment_rolls_back(sim):
    c, td1 = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "5" * 64, "5.0.0", "slow")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    wait(lambda: sd_status(c, arn)["status"] == "ROLLBACK_SUCCESSFUL")
    assert c.describe_services(cluster="shop", services=["web"])["services"][0]["taskDefinition"] == td1
    with pytest.raises(c.exceptions.ClientError) as e:
        c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert e.value.response["Error"]["Code"] == "ConflictException"


def test_smoke_error_and_throttling(sim):
    c, _ = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "6" * 64, "6.0.0", "smoke-error")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    wait(lambda: steady(c) and c.describe_services(cluster="shop", services=["web"])["services"][0]["taskDefinition"] == td2)
    assert health(sim, "shop", "web")[0] == 500
    control(sim, "faults", {"operation": "DescribeServices", "error": "ThrottlingException", "count": 1})
    req = urllib.request.Request(sim + "/", data=b'{"cluster":"shop","services":["web"]}', method="POST",
                                 headers={"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeServices"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400
    assert json.loads(e.value.read()) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    # boto3 retries throttling by itself.
    control(sim, "faults", {"operation": "DescribeServices", "error": "ThrottlingException", "count": 2})
    assert c.describe_services(cluster="shop", services=["web"])["services"][0]["serviceName"] == "web"


def test_aws_cli_parses_the_answers(sim):
    setup_service(sim)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    aws = [sys.executable, "-m", "awscli"]  # the CLI of the installed package, PATH or not
    out = subprocess.run(aws + ["ecs", "describe-services", "--endpoint-url", sim, "--cluster", "shop", "--services", "web",
                          "--output", "json"], env=env, capture_output=True, text=True, check=True)
    svc = json.loads(out.stdout)["services"][0]
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    out = subprocess.run(aws + ["ecs", "list-service-deployments", "--endpoint-url", sim, "--cluster", "shop", "--service", "web",
                          "--output", "json"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["serviceDeployments"][0]["status"] == "SUCCESSFUL"


def statuses_until_end(c, arn, on_status=None, timeout=20):
    """Polls a service deployment until it ends; returns the statuses seen, in order."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = sd_status(c, arn)["status"]
        if not seen or seen[-1] != st:
            seen.append(st)
            if on_status:
                on_status(st)
        if st in ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"service deployment never ended: {seen}")


# ---------- 1. eventual consistency, denied operations, rate limits
def test_reads_lag_behind_update_service(make_sim):
    sim = make_sim()
    c, td1 = setup_service(sim)
    control(sim, "lag", {"cluster": "shop", "service": "web", "seconds": 1.5})
    td2 = new_revision(c, sim, "repo@sha256:" + "7" * 64, "7.0.0", "healthy")
    before = describe(c)
    answer = c.update_service(cluster="shop", service="web", taskDefinition=td2)["service"]
    # UpdateService's own answer is current: the new PRIMARY deployment and its id.
    assert answer["taskDefinition"] == td2 and answer["deployments"][0]["taskDefinition"] == td2
    new_id = answer["deployments"][0]["id"]
    # Reads answer the state from before the update.
    stale = describe(c)
    assert stale["taskDefinition"] == td1
    assert [d["id"] for d in stale["deployments"]] == [d["id"] for d in before["deployments"]]
    assert new_id not in [d["id"] for d in stale["deployments"]]
    assert len(c.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]) == 1
    hidden = sim_state(sim)["serviceDeployments"][-1]   # the simulator's own state never lags
    out = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [hidden["serviceDeploymentArn"]]})
    assert out == {"serviceDeployments": [], "failures": [{"arn": hidden["serviceDeploymentArn"], "reason": "MISSING"}]}
    out = raw(sim, "DescribeServiceRevisions", {"serviceRevisionArns": [hidden["targetServiceRevision"]["arn"]]})
    assert out["failures"][0]["reason"] == "MISSING"
    # Then the reads catch up.
    wait(lambda: describe(c)["taskDefinition"] == td2, timeout=5)
    assert new_id in [d["id"] for d in describe(c)["deployments"]]
    arn = wait(lambda: service_deployment(c, td2))
    assert arn == hidden["serviceDeploymentArn"]
    # A default lag for every service, from the command line.
    sim2 = make_sim("--read-lag", "1")
    c2, td = setup_service(sim2)
    td3 = new_revision(c2, sim2, "repo@sha256:" + "8" * 64, "8.0.0", "healthy")
    c2.update_service(cluster="shop", service="web", taskDefinition=td3)
    assert describe(c2)["taskDefinition"] == td
    wait(lambda: describe(c2)["taskDefinition"] == td3, timeout=5)


def test_denied_operations_answer_access_denied(sim):
    c, _ = setup_service(sim)
    ops = ["ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"]
    arn = sim_state(sim)["serviceDeployments"][0]["serviceDeploymentArn"]
    control(sim, "deny", {"operations": ops})
    for op, body in [("ListServiceDeployments", {"cluster": "shop", "service": "web"}),
                     ("DescribeServiceDeployments", {"serviceDeploymentArns": [arn]}),
                     ("DescribeServiceRevisions", {"serviceRevisionArns": ["arn:aws:ecs:us-east-1:1:service-revision/x"]})]:
        with pytest.raises(urllib.error.HTTPError) as e:
            raw(sim, op, body)   # raw() checks the error code is one the operation documents
        assert (e.value.code, e.value.error["__type"]) == (400, "AccessDeniedException")
    with pytest.raises(c.exceptions.AccessDeniedException) as e:
        c.list_service_deployments(cluster="shop", service="web")
    assert "is not authorized to perform: ecs:ListServiceDeployments" in e.value.response["Error"]["Message"]
    assert describe(c)["serviceName"] == "web", "other operations still work"
    control(sim, "deny", {"operations": []})
    assert c.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]


def test_rate_limit_answers_throttling(sim):
    setup_service(sim)
    control(sim, "throttle", {"operation": "ListServiceDeployments", "per_second": 1})
    body = {"cluster": "shop", "service": "web"}
    raw(sim, "ListServiceDeployments", body)
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "ListServiceDeployments", body)
    assert e.value.code == 400
    assert e.value.error == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web"]})   # other operations are not limited
    time.sleep(1.05)
    raw(sim, "ListServiceDeployments", body)
    control(sim, "throttle", {"operation": "ListServiceDeployments", "per_second": 0})
    for _ in range(3):
        raw(sim, "ListServiceDeployments", body)


# ---------- 2. service deployment lifecycle
def test_service_deployment_lifecycle_and_stop_during_rollback(sim):
    c, td1 = setup_service(sim)
    control(sim, "timing", {"pending_seconds": 1.0})
    td2 = new_revision(c, sim, "repo@sha256:" + "a" * 64, "10.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    assert statuses_until_end(c, arn) == ["PENDING", "IN_PROGRESS", "SUCCESSFUL"]
    full = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})["serviceDeployments"][0]
    assert full["deploymentCircuitBreaker"]["status"] == "MONITORING_COMPLETE"
    assert full["startedAt"] >= full["createdAt"] and full["finishedAt"] >= full["startedAt"]

    td3 = new_revision(c, sim, "repo@sha256:" + "b" * 64, "11.0.0", "crash")
    c.update_service(cluster="shop", service="web", taskDefinition=td3)
    arn = wait(lambda: service_deployment(c, td3))
    accepted = []

    def stop_while_rolling_back(status):
        if status.startswith("ROLLBACK_") and status != "ROLLBACK_SUCCESSFUL":
            accepted.append(c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")["serviceDeploymentArn"])
    seen = statuses_until_end(c, arn, stop_while_rolling_back)
    assert seen == ["PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"]
    assert accepted == [arn, arn], "StopServiceDeployment is accepted while rolling back; the rollback continues"
    assert describe(c)["taskDefinition"] == td2
    with pytest.raises(c.exceptions.ConflictException):
        c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")


def test_stop_with_abort_ends_stopped(sim):
    c, td1 = setup_service(sim)
    control(sim, "timing", {"pending_seconds": 1.0})
    td2 = new_revision(c, sim, "repo@sha256:" + "c" * 64, "12.0.0", "slow")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn)["status"] == "IN_PROGRESS")
    c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    seen = statuses_until_end(c, arn, lambda st: st == "STOP_REQUESTED" and
                              c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK"))
    assert seen == ["STOP_REQUESTED", "STOPPED"], "a stop request continues to stop, even when asked to roll back"
    sd = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})["serviceDeployments"][0]
    assert "stoppedAt" in sd and "ABORT" in sd["statusReason"]
    svc = describe(c)
    assert svc["deployments"][0]["rolloutState"] == "FAILED", "no rollback: the stopped deployment stays PRIMARY"
    assert svc["deployments"][1]["taskDefinition"] == td1 and svc["deployments"][1]["runningCount"] == 2
    with pytest.raises(c.exceptions.ConflictException):
        c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")


# ---------- 3. the circuit breaker as ECS counts
def test_health_check_replacements_count_and_stop_with_scheduler_code(sim):
    c, td1 = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "d" * 64, "13.0.0", "unhealthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn)["status"] == "ROLLBACK_SUCCESSFUL")
    sd = sd_status(c, arn)
    assert sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert sd["deploymentCircuitBreaker"]["failureCount"] >= sd["deploymentCircuitBreaker"]["threshold"] == 3
    stopped = tasks_of(c, td2)
    assert stopped and all(t["stopCode"] == "ServiceSchedulerInitiated" for t in stopped)
    assert all(t["stoppedReason"] == "Task failed container health checks" for t in stopped)
    assert any("failed container health checks." in m for m in messages(c))
    assert describe(c)["taskDefinition"] == td1


def test_failure_count_resets_when_a_task_turns_healthy(sim):
    c, _ = setup_service(sim)
    control(sim, "timing", {"restart_backoff_seconds": 1.0})   # a longer look at the count of 2
    # The first two tasks of this image crash at start; later ones are healthy.
    image = "repo@sha256:" + "e" * 64
    control(sim, "images", {"image": image, "version": "14.0.0", "behavior": "crash", "failures": 2})
    td2 = c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image}])["taskDefinition"]["taskDefinitionArn"]
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    counts = []
    deadline = time.time() + 15
    while sd_status(c, arn)["status"] != "SUCCESSFUL" and time.time() < deadline:
        d = next(d for d in describe(c)["deployments"] if d["taskDefinition"] == td2)
        counts.append(d["failedTasks"])
        time.sleep(0.03)
    assert sd_status(c, arn)["status"] == "SUCCESSFUL"
    assert 2 in counts and counts[-1] == 0, f"2 failures, then reset by a healthy task: {counts}"
    assert sd_status(c, arn)["deploymentCircuitBreaker"]["failureCount"] == 0
    assert len(tasks_of(c, td2)) == 2


def test_crash_after_running_never_trips_the_breaker(sim):
    c, td1 = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "f" * 64, "15.0.0", "crash-after-running")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: len(tasks_of(c, td2)) >= 6, timeout=10)
    sd = sd_status(c, arn)
    assert sd["status"] == "IN_PROGRESS" and sd["deploymentCircuitBreaker"]["failureCount"] == 0
    d = describe(c)["deployments"][0]
    assert (d["taskDefinition"], d["rolloutState"], d["failedTasks"]) == (td2, "IN_PROGRESS", 0)
    stopped = tasks_of(c, td2)
    assert all(t["stopCode"] == "EssentialContainerExited" and "startedAt" in t for t in stopped)
    assert all(t["healthStatus"] == "UNKNOWN" for t in stopped), "no container health check"
    assert not any("unable to consistently start" in m for m in messages(c)), "tasks reached RUNNING: no throttle"
    # A deploy tool has to time out and stop it.
    c.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    wait(lambda: sd_status(c, arn)["status"] == "ROLLBACK_SUCCESSFUL")
    assert describe(c)["taskDefinition"] == td1


def test_tasks_that_never_start_are_restarted_with_growing_delays(sim):
    c, _ = setup_service(sim, breaker=False)
    control(sim, "timing", {"restart_backoff_max_seconds": 5})
    td2 = new_revision(c, sim, "repo@sha256:" + "9" * 64, "16.0.0", "crash")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    wait(lambda: len(tasks_of(c, td2)) >= 8, timeout=15)
    created = sorted({round(t["createdAt"].timestamp(), 2) for t in tasks_of(c, td2)})
    gaps = [round(b - a, 2) for a, b in zip(created, created[1:])]
    assert gaps[-1] >= 3 * gaps[0], f"launches ever further apart: {gaps}"
    throttled = [m for m in messages(c) if m == "(service web) is unable to consistently start tasks successfully."]
    assert len(throttled) == 1, "the repeated event is omitted until the cause is resolved"
    d = describe(c)["deployments"][0]
    assert d["rolloutState"] == "IN_PROGRESS" and d["failedTasks"] >= 6, "no breaker: it keeps trying"


# ---------- 4. the rollback target
def test_rollback_goes_to_the_last_completed_deployment(sim):
    c, td1 = setup_service(sim)
    td2 = new_revision(c, sim, "repo@sha256:" + "2" * 64, "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn2 = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn2)["status"] == "SUCCESSFUL")
    td3 = new_revision(c, sim, "repo@sha256:" + "3" * 64, "3.0.0", "crash")
    c.update_service(cluster="shop", service="web", taskDefinition=td3)
    arn3 = wait(lambda: service_deployment(c, td3))
    wait(lambda: sd_status(c, arn3)["status"] == "ROLLBACK_SUCCESSFUL")
    assert describe(c)["taskDefinition"] == td2
    assert sd_status(c, arn3)["rollback"]["serviceRevisionArn"] == sd_status(c, arn2)["targetServiceRevision"]["arn"]


def test_without_a_completed_deployment_the_breaker_stalls(sim):
    c, td1 = setup_service(sim, behavior="crash", wait_steady=False)
    wait(lambda: describe(c)["deployments"][0]["rolloutState"] == "FAILED")
    arn = sim_state(sim)["serviceDeployments"][0]["serviceDeploymentArn"]
    # Every task of the revision, whatever its state, from one atomic read: counting only the
    # STOPPED ones raced with tasks launched before FAILED that crash a moment later.
    def launched_tasks():
        return [t for t in sim_state(sim)["tasks"] if t["taskDefinitionArn"] == td1]
    launched = len(launched_tasks())
    time.sleep(1)
    sd = sd_status(c, arn)
    assert sd["status"] == "IN_PROGRESS" and sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert "stalled" in sd["statusReason"] and "rollback" not in sd
    svc = describe(c)
    assert len(svc["deployments"]) == 1 and svc["deployments"][0]["rolloutState"] == "FAILED"
    assert len(launched_tasks()) == launched, "a FAILED deployment launches no new tasks"


# ---------- 5. load balancer
def test_load_balancer_mixes_versions_and_drains_old_targets(sim):
    # maximumPercent 150: one new task at a time, so one old target serves beside the first new one.
    c, td1 = setup_service(sim, loadBalancers=LB, deploymentConfiguration={"maximumPercent": 150})
    control(sim, "timing", {"deregistration_delay_seconds": 1.0})
    td2 = new_revision(c, sim, "repo@sha256:" + "4" * 64, "4.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    mixed, draining_seen = False, False
    while sd_status(c, arn)["status"] != "SUCCESSFUL":
        burst = {health(sim, "shop", "web")[1].get("version") for _ in range(4)}
        mixed = mixed or burst == {"1.0.0", "4.0.0"}
        deps = describe(c)["deployments"]
        if len(deps) == 2 and deps[0]["runningCount"] == 2 and deps[1]["status"] == "ACTIVE":
            draining_seen = True     # the new tasks run, the old deployment stays ACTIVE while its targets drain
        time.sleep(0.02)
    assert mixed, "during the rollout the load balancer answers from old and new targets at once"
    assert draining_seen
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"4.0.0"}
    ms = messages(c)
    assert f"(service web) registered 1 targets in (target-group {TG})" in ms
    assert f"(service web) deregistered 1 targets in (target-group {TG})" in ms
    assert "(service web) has begun draining connections on 1 tasks." in ms
    raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web"]})


def test_tasks_failing_elb_health_checks_are_replaced_after_the_grace_period(sim):
    c, td1 = setup_service(sim, loadBalancers=LB, healthCheckGracePeriodSeconds=1)
    control(sim, "timing", {"deregistration_delay_seconds": 0.1})
    td2 = new_revision(c, sim, "repo@sha256:" + "5" * 64, "5.0.0", "elb-unhealthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    while sd_status(c, arn)["status"] != "ROLLBACK_SUCCESSFUL":
        assert health(sim, "shop", "web")[1].get("version") != "5.0.0", "an unhealthy target gets no traffic"
        time.sleep(0.05)
    stopped = tasks_of(c, td2)
    assert len(stopped) >= 3
    for t in stopped:
        assert t["stopCode"] == "ServiceSchedulerInitiated"
        assert t["stoppedReason"] == f"Task failed ELB health checks in (target-group {TG})"
        assert (t["stoppingAt"] - t["startedAt"]).total_seconds() >= 1.0 * SCALE, "not before the grace period"
    assert any(m.startswith("(service web) (task ") and "(port 8080) is unhealthy in (target-group web-tg) due to" in m
               for m in messages(c))
    assert sd_status(c, arn)["deploymentCircuitBreaker"]["failureCount"] >= 3
    assert describe(c)["taskDefinition"] == td1


# ---------- 6. deployment alarms and bake time
ALARMS = {"alarmNames": ["web-5xx"], "enable": True, "rollback": True}


def test_an_alarm_during_the_bake_time_rolls_back(sim):
    c, td1 = setup_service(sim, deploymentConfiguration={"alarms": ALARMS})
    control(sim, "timing", {"alarm_bake_seconds": 30})
    td2 = new_revision(c, sim, "repo@sha256:" + "6" * 64, "6.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    # Baking: the new tasks run alone, yet the deployment and the service deployment stay IN_PROGRESS.
    wait(lambda: (lambda d: len(d) == 1 and d[0]["runningCount"] == 2)(describe(c)["deployments"]))
    time.sleep(0.5)
    assert describe(c)["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert sd_status(c, arn)["status"] == "IN_PROGRESS"
    assert sd_status(c, arn)["alarms"] == {"status": "MONITORING", "alarmNames": ["web-5xx"]}
    control(sim, "alarms", {"name": "web-5xx", "state": "ALARM"})
    wait(lambda: sd_status(c, arn)["status"] == "ROLLBACK_SUCCESSFUL")
    sd = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})["serviceDeployments"][0]
    assert sd["alarms"] == {"status": "TRIGGERED", "alarmNames": ["web-5xx"], "triggeredAlarmNames": ["web-5xx"]}
    assert "web-5xx" in sd["rollback"]["reason"]
    assert describe(c)["taskDefinition"] == td1
    assert any("deployment failed: alarm detected." in m for m in messages(c))


def test_an_alarm_without_rollback_stops_the_deployment(sim):
    c, td1 = setup_service(sim, deploymentConfiguration={"alarms": dict(ALARMS, rollback=False)})
    control(sim, "alarms", {"name": "web-5xx", "state": "ALARM"})
    td2 = new_revision(c, sim, "repo@sha256:" + "8" * 64, "8.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn)["status"] == "STOPPED")
    sd = sd_status(c, arn)
    assert sd["alarms"]["status"] == "TRIGGERED" and "rollback" not in sd
    d = describe(c)["deployments"][0]
    assert (d["taskDefinition"], d["rolloutState"]) == (td2, "FAILED")


def test_bake_time_in_minutes_keeps_the_service_deployment_in_progress(make_sim):
    sim = make_sim("--time-scale", "0.02")          # 1 minute of bake = 1.2 s
    c, td1 = setup_service(sim)
    c.update_service(cluster="shop", service="web", deploymentConfiguration={"bakeTimeInMinutes": 1})
    td2 = new_revision(c, sim, "repo@sha256:" + "a" * 63 + "0", "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: (lambda d: len(d) == 1 and d[0]["runningCount"] == 2)(describe(c)["deployments"]))
    rolled_out = time.time()
    assert statuses_until_end(c, arn)[-1] == "SUCCESSFUL"
    assert time.time() - rolled_out >= 1.0, "60 s x 0.02"
    assert describe(c)["deployments"][0]["rolloutState"] == "COMPLETED"


# ---------- 7. capacity
def test_unplaceable_tasks_stay_pending_and_do_not_count(sim):
    c, td1 = setup_service(sim, launchType="EC2")
    td2 = new_revision(c, sim, "repo@sha256:" + "b" * 63 + "0", "2.0.0", "unplaceable")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    time.sleep(1.5)
    d = describe(c)["deployments"][0]
    assert (d["rolloutState"], d["pendingCount"], d["runningCount"], d["failedTasks"]) == ("IN_PROGRESS", 2, 0, 0)
    sd = sd_status(c, arn)
    assert sd["status"] == "IN_PROGRESS" and sd["deploymentCircuitBreaker"]["failureCount"] == 0
    unplaced = [m for m in messages(c) if "was unable to place a task because no container instance met all of its requirements" in m]
    assert len(unplaced) == 1, "the repeated event is omitted until the cause is resolved"
    assert all(t["lastStatus"] == "PROVISIONING" for t in tasks_of(c, td2, "RUNNING"))


def test_a_cluster_without_capacity_holds_the_rollout_until_capacity_returns(sim):
    c, td1 = setup_service(sim)
    control(sim, "capacity", {"cluster": "shop", "available": False})
    td2 = new_revision(c, sim, "repo@sha256:" + "c" * 63 + "0", "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: any("was unable to place a task. Reason: Capacity is unavailable at this time." in m for m in messages(c)))
    time.sleep(0.5)
    assert sd_status(c, arn)["status"] == "IN_PROGRESS" and describe(c)["deployments"][0]["pendingCount"] == 2
    control(sim, "capacity", {"cluster": "shop", "available": True})
    wait(lambda: sd_status(c, arn)["status"] == "SUCCESSFUL")


# ---------- CodeDeploy blue/green
TG_BLUE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/0123456789abcdef"
LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/0123456789abcdef/"


def codedeploy(endpoint):
    return boto3.client("codedeploy", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def setup_blue_green(endpoint, config="CodeDeployDefault.ECSAllAtOnce", ready=None, termination_minutes=0,
                     rollback_events=("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"),
                     alarms=None):
    """Service `web` in `shop` with the CODE_DEPLOY controller, app `shop`, group `web`; one
    CodeDeploy minute lasts 0.5 s."""
    control(endpoint, "timing", {"codedeploy_minute_seconds": 1.0})   # × SCALE
    lb = [{"targetGroupArn": TG_BLUE, "containerName": "web", "containerPort": 8080}]
    c, td = setup_service(endpoint, wait_steady=False, loadBalancers=lb, deploymentController={"type": "CODE_DEPLOY"})
    cd = codedeploy(endpoint)
    cd.create_application(applicationName="shop", computePlatform="ECS")
    group = dict(applicationName="shop", deploymentGroupName="web", serviceRoleArn="arn:aws:iam::123456789012:role/cd",
                 deploymentConfigName=config, ecsServices=[{"clusterName": "shop", "serviceName": "web"}],
                 deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
                 blueGreenDeploymentConfiguration={
                     "deploymentReadyOption": ready or {"actionOnTimeout": "CONTINUE_DEPLOYMENT", "waitTimeInMinutes": 0},
                     "terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE",
                                                                   "terminationWaitTimeInMinutes": termination_minutes}},
                 loadBalancerInfo={"targetGroupPairInfoList": [{
                     "targetGroups": [{"name": "web-blue"}, {"name": "web-green"}],
                     "prodTrafficRoute": {"listenerArns": [LISTENER + "prod"]},
                     "testTrafficRoute": {"listenerArns": [LISTENER + "test"]}}]},
                 autoRollbackConfiguration={"enabled": bool(rollback_events), "events": list(rollback_events)})
    if alarms:
        group["alarmConfiguration"] = {"enabled": True, "alarms": [{"name": a} for a in alarms]}
    cd.create_deployment_group(**group)
    wait(lambda: health(endpoint, "shop", "web")[0] == 200)
    return c, cd, td


def appspec(td, container="web", port=8080):
    content = json.dumps({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": td, "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port}}}}]})
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}


def cd_deploy(c, cd, endpoint, image, version, behavior="healthy"):
    td = new_revision(c, endpoint, image, version, behavior)
    return td, cd.create_deployment(applicationName="shop", deploymentGroupName="web", revision=appspec(td))["deploymentId"]


def cd_status(cd, dep):
    return cd.get_deployment(deploymentId=dep)["deploymentInfo"]


def ecs_target(cd, dep):
    return cd.get_deployment_target(deploymentId=dep, targetId="shop:web")["deploymentTarget"]["ecsTarget"]


def test_codedeploy_answers_match_the_service_model(sim):
    c, cd, td = setup_blue_green(sim, ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 30})
    raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web"]})
    td2, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "a" * 64, "2.0.0")
    for op, body in [("ListApplications", {}), ("ListDeploymentGroups", {"applicationName": "shop"}),
                     ("GetApplication", {"applicationName": "shop"}), ("BatchGetApplications", {"applicationNames": ["shop"]}),
                     ("BatchGetDeploymentGroups", {"applicationName": "shop", "deploymentGroupNames": ["web", "nope"]}),
                     ("GetDeploymentGroup", {"applicationName": "shop", "deploymentGroupName": "web"}),
                     ("GetDeploymentConfig", {"deploymentConfigName": "CodeDeployDefault.ECSCanary10Percent5Minutes"}),
                     ("ListDeployments", {"applicationName": "shop", "deploymentGroupName": "web"}),
                     ("GetDeployment", {"deploymentId": dep})]:
        raw(sim, op, body, "codedeploy")
    wait(lambda: cd_status(cd, dep)["status"] == "Ready")
    raw(sim, "GetDeployment", {"deploymentId": dep}, "codedeploy")
    raw(sim, "ListDeploymentTargets", {"deploymentId": dep}, "codedeploy")
    raw(sim, "GetDeploymentTarget", {"deploymentId": dep, "targetId": "shop:web"}, "codedeploy")
    raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web"]})
    raw(sim, "ContinueDeployment", {"deploymentId": dep, "deploymentWaitType": "READY_WAIT"}, "codedeploy")
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "ContinueDeployment", {"deploymentId": dep, "deploymentWaitType": "READY_WAIT"}, "codedeploy")
    assert e.value.error["__type"] == "DeploymentIsNotInReadyStateException"
    wait(lambda: cd_status(cd, dep)["status"] == "Succeeded")
    raw(sim, "GetDeployment", {"deploymentId": dep}, "codedeploy")
    raw(sim, "GetDeploymentTarget", {"deploymentId": dep, "targetId": "shop:web"}, "codedeploy")
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "StopDeployment", {"deploymentId": dep, "autoRollbackEnabled": True}, "codedeploy")
    assert e.value.error["__type"] == "DeploymentAlreadyCompletedException"
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "GetDeployment", {"deploymentId": "d-NOPE00000"}, "codedeploy")
    assert e.value.error["__type"] == "DeploymentDoesNotExistException"
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "GetApplication", {"applicationName": "nope"}, "codedeploy")
    assert e.value.error["__type"] == "ApplicationDoesNotExistException"
    assert cd.get_application(applicationName="shop")["application"]["computePlatform"] == "ECS"
    _, dep2 = cd_deploy(c, cd, sim, "repo@sha256:" + "b" * 64, "3.0.0")
    wait(lambda: cd_status(cd, dep2)["status"] == "Ready")
    out = raw(sim, "StopDeployment", {"deploymentId": dep2, "autoRollbackEnabled": True}, "codedeploy")
    assert out["status"] == "Pending"
    info = raw(sim, "GetDeployment", {"deploymentId": dep2}, "codedeploy")["deploymentInfo"]
    rb = info["rollbackInfo"]["rollbackDeploymentId"]
    wait(lambda: cd_status(cd, rb)["status"] == "Succeeded")
    raw(sim, "GetDeployment", {"deploymentId": rb}, "codedeploy")
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "UpdateService", {"cluster": "shop", "service": "web", "taskDefinition": td})
    assert e.value.error["__type"] == "InvalidParameterException"


def test_codedeploy_all_at_once_with_a_ready_wait_and_test_listener(sim):
    c, cd, td1 = setup_blue_green(sim, ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 30},
                                  termination_minutes=2)
    assert health(sim, "shop", "web", "test/")[1]["version"] == "1.0.0"
    td2, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "c" * 64, "2.0.0")
    wait(lambda: cd_status(cd, dep)["status"] == "Ready")
    # The replacement serves the test listener; production never moved.
    assert {health(sim, "shop", "web", "test/")[1]["version"] for _ in range(4)} == {"2.0.0"}
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"1.0.0"}
    target = ecs_target(cd, dep)
    assert {ts["taskSetLabel"]: ts["trafficWeight"] for ts in target["taskSetsInfo"]} == {"Blue": 100.0, "Green": 0.0}
    assert [e["status"] for e in target["lifecycleEvents"]][:5] == ["Succeeded"] * 5
    assert describe(c)["taskDefinition"] == td1
    cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT")
    wait(lambda: cd_status(cd, dep)["instanceTerminationWaitTimeStarted"])
    assert cd_status(cd, dep)["status"] == "InProgress"
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"2.0.0"}
    assert describe(c)["taskDefinition"] == td2
    assert len(describe(c)["taskSets"]) == 2     # the original waits for its termination
    cd.continue_deployment(deploymentId=dep, deploymentWaitType="TERMINATION_WAIT")
    wait(lambda: cd_status(cd, dep)["status"] == "Succeeded")
    wait(lambda: len(describe(c)["taskSets"]) == 1)
    assert describe(c)["taskSets"][0]["taskDefinition"] == td2


def test_codedeploy_canary_shifts_traffic_over_time(sim):
    c, cd, _ = setup_blue_green(sim, config="CodeDeployDefault.ECSCanary10Percent5Minutes")
    _, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "d" * 64, "2.0.0")
    weights = []

    def green():
        if cd_status(cd, dep)["status"] == "Created":
            return False
        w = {ts["taskSetLabel"]: ts["trafficWeight"] for ts in ecs_target(cd, dep)["taskSetsInfo"]}.get("Green")
        if w is not None and (not weights or weights[-1] != w):
            weights.append(w)
        return cd_status(cd, dep)["status"] == "Succeeded"
    wait(green, timeout=30)
    assert 10.0 in weights and weights[-1] == 100.0, weights


def test_codedeploy_linear_shifts_in_steps(sim):
    cd = codedeploy(sim)
    c, cd, _ = setup_blue_green(sim, config="CodeDeployDefault.ECSLinear10PercentEvery1Minutes")
    _, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "e" * 64, "2.0.0")
    seen = set()

    def done():
        if cd_status(cd, dep)["status"] != "Created":
            for ts in ecs_target(cd, dep)["taskSetsInfo"]:
                if ts["taskSetLabel"] == "Green":
                    seen.add(ts["trafficWeight"])
        return cd_status(cd, dep)["status"] == "Succeeded"
    wait(done, timeout=30)
    assert {20.0, 50.0, 100.0} <= seen, sorted(seen)


def test_codedeploy_unhealthy_replacement_fails_install_and_rolls_back(sim):
    c, cd, td1 = setup_blue_green(sim)
    _, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "f" * 64, "2.0.0", "elb-unhealthy")
    wait(lambda: cd_status(cd, dep)["status"] == "Failed")
    info = cd_status(cd, dep)
    assert info["errorInformation"]["code"] == "ECS_UPDATE_ERROR"
    install = next(e for e in ecs_target(cd, dep)["lifecycleEvents"] if e["lifecycleEventName"] == "Install")
    assert install["status"] == "Failed" and "steady state" in install["diagnostics"]["message"]
    rb = info["rollbackInfo"]["rollbackDeploymentId"]
    wait(lambda: cd_status(cd, rb)["status"] == "Succeeded")
    assert cd_status(cd, rb)["creator"] == "codeDeployRollback"
    wait(lambda: len(describe(c)["taskSets"]) == 1)
    assert describe(c)["taskDefinition"] == td1
    assert health(sim, "shop", "web")[1]["version"] == "1.0.0"


def test_codedeploy_alarm_stops_a_canary_and_a_rollback_can_fail(sim):
    c, cd, td1 = setup_blue_green(sim, config="CodeDeployDefault.ECSCanary10Percent15Minutes", alarms=["web-5xx"])
    _, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "9" * 64, "2.0.0")
    wait(lambda: cd_status(cd, dep)["status"] != "Created" and any(
        ts["trafficWeight"] == 10.0 for ts in ecs_target(cd, dep)["taskSetsInfo"]))
    control(sim, "codedeploy", {"fail_rollback": True})
    control(sim, "alarms", {"name": "web-5xx", "state": "ALARM"})
    wait(lambda: cd_status(cd, dep)["status"] == "Stopped")
    info = cd_status(cd, dep)
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    rb = info["rollbackInfo"]["rollbackDeploymentId"]
    wait(lambda: cd_status(cd, rb)["status"] == "Failed")
    assert "rollback failed" in cd_status(cd, rb)["errorInformation"]["message"]
    # Traffic stays where it was: a human must look.
    assert {ts["taskSetLabel"]: ts["trafficWeight"] for ts in ecs_target(cd, dep)["taskSetsInfo"]}["Green"] == 10.0


def test_codedeploy_rejects_a_second_deployment_and_a_wrong_appspec(sim):
    c, cd, td1 = setup_blue_green(sim, ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 30})
    _, dep = cd_deploy(c, cd, sim, "repo@sha256:" + "8" * 64, "2.0.0")
    with pytest.raises(cd.exceptions.DeploymentLimitExceededException):
        cd.create_deployment(applicationName="shop", deploymentGroupName="web", revision=appspec(td1))
    cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=True)
    with pytest.raises(cd.exceptions.InvalidRevisionException):
        cd.create_deployment(applicationName="shop", deploymentGroupName="web", revision=appspec(td1, port=9999))
    with pytest.raises(cd.exceptions.DeploymentGroupDoesNotExistException):
        cd.create_deployment(applicationName="shop", deploymentGroupName="nope", revision=appspec(td1))


# ---------- ECS-native blue/green, linear, canary
TG_ALT = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/fedcba9876543210"


def setup_native(endpoint, strategy="BLUE_GREEN", **dc):
    control(endpoint, "timing", {"ecs_minute_seconds": 1.0, "stage_seconds": 0.4})   # × SCALE
    lb = [{"targetGroupArn": TG, "containerName": "web", "containerPort": 8080, "advancedConfiguration": {
        "alternateTargetGroupArn": TG_ALT, "productionListenerRule": LISTENER + "prod-rule",
        "testListenerRule": LISTENER + "test-rule", "roleArn": "arn:aws:iam::123456789012:role/ecs-lb"}}]
    return setup_service(endpoint, loadBalancers=lb,
                         deploymentConfiguration=dict({"strategy": strategy, "bakeTimeInMinutes": 1}, **dc))


def test_native_blue_green_walks_the_lifecycle_stages(sim):
    c, td1 = setup_native(sim)
    raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web"]})
    td2 = new_revision(c, sim, "repo@sha256:" + "7" * 64, "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    stages, versions = [], {"test": set(), "prod": set()}

    def follow():
        sd = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})["serviceDeployments"][0]
        if sd.get("lifecycleStage") and (not stages or stages[-1] != sd["lifecycleStage"]):
            stages.append(sd["lifecycleStage"])
        if sd.get("lifecycleStage") == "POST_TEST_TRAFFIC_SHIFT":
            seen = (health(sim, "shop", "web", "test/")[1].get("version"), health(sim, "shop", "web")[1].get("version"))
            # Stages only move forward: when the stage still reads the same after both answers,
            # both were given during it (the stage may end between the two reads).
            again = raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})["serviceDeployments"][0]
            if again.get("lifecycleStage") == "POST_TEST_TRAFFIC_SHIFT":
                versions["test"].add(seen[0])
                versions["prod"].add(seen[1])
        return sd["status"] == "SUCCESSFUL"
    wait(follow, timeout=30)
    assert stages[0] == "RECONCILE_SERVICE" and stages[-1] == "CLEAN_UP", stages
    assert {"SCALE_UP", "TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME"} <= set(stages), stages
    # During the test-traffic stages: green on the test listener, production untouched.
    assert versions == {"test": {"2.0.0"}, "prod": {"1.0.0"}}, versions
    assert describe(c)["taskDefinition"] == td2
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"2.0.0"}


def test_native_canary_and_a_stop_during_test_traffic_rolls_back(sim):
    c, td1 = setup_native(sim, "CANARY", canaryConfiguration={"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 2})
    td2 = new_revision(c, sim, "repo@sha256:" + "6" * 64, "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    wait(lambda: sd_status(c, arn).get("lifecycleStage") == "PRODUCTION_TRAFFIC_SHIFT")
    seen = {health(sim, "shop", "web")[1]["version"] for _ in range(20)}
    assert seen == {"1.0.0", "2.0.0"}, seen
    wait(lambda: sd_status(c, arn)["status"] == "SUCCESSFUL", timeout=30)
    td3 = new_revision(c, sim, "repo@sha256:" + "5" * 64, "3.0.0", "smoke-error")
    c.update_service(cluster="shop", service="web", taskDefinition=td3)
    arn3 = wait(lambda: service_deployment(c, td3))
    wait(lambda: sd_status(c, arn3).get("lifecycleStage") == "TEST_TRAFFIC_SHIFT")
    assert health(sim, "shop", "web", "test/")[0] == 500
    c.stop_service_deployment(serviceDeploymentArn=arn3, stopType="ROLLBACK")
    wait(lambda: sd_status(c, arn3)["status"] == "ROLLBACK_SUCCESSFUL", timeout=30)
    wait(lambda: steady(c))
    assert describe(c)["taskDefinition"] == td2


def test_native_pause_hook_holds_until_continue_or_rollback(sim):
    hooks = [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
              "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"}},
             {"targetType": "AWS_LAMBDA", "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
              "roleArn": "arn:aws:iam::123456789012:role/hook", "lifecycleStages": ["POST_SCALE_UP"]}]
    c, td1 = setup_native(sim, lifecycleHooks=hooks)
    td2 = new_revision(c, sim, "repo@sha256:" + "4" * 64, "2.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    arn = wait(lambda: service_deployment(c, td2))
    paused = lambda: next((h for h in sd_status(c, arn).get("lifecycleHookDetails", [])
                           if h["status"] == "AWAITING_ACTION"), None)
    hook = wait(paused)
    assert hook["targetType"] == "PAUSE" and hook["timeoutAction"] == "ROLLBACK"
    raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [arn]})
    time.sleep(1.5)   # held: production has not moved
    assert sd_status(c, arn)["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert health(sim, "shop", "web", "test/")[1]["version"] == "2.0.0"
    assert {health(sim, "shop", "web")[1]["version"] for _ in range(4)} == {"1.0.0"}
    raw(sim, "ContinueServiceDeployment", {"serviceDeploymentArn": arn, "hookId": hook["hookId"], "action": "CONTINUE"})
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "ContinueServiceDeployment", {"serviceDeploymentArn": arn, "hookId": hook["hookId"], "action": "CONTINUE"})
    assert e.value.error["__type"] == "InvalidParameterException"
    wait(lambda: sd_status(c, arn)["status"] == "SUCCESSFUL", timeout=30)
    td3 = new_revision(c, sim, "repo@sha256:" + "3" * 64, "3.0.0", "healthy")
    c.update_service(cluster="shop", service="web", taskDefinition=td3)
    arn3 = wait(lambda: service_deployment(c, td3))
    hook = wait(lambda: next((h for h in sd_status(c, arn3).get("lifecycleHookDetails", [])
                              if h["status"] == "AWAITING_ACTION"), None))
    c.continue_service_deployment(serviceDeploymentArn=arn3, hookId=hook["hookId"], action="ROLLBACK")
    wait(lambda: sd_status(c, arn3)["status"] == "ROLLBACK_SUCCESSFUL", timeout=30)
    wait(lambda: steady(c))
    assert describe(c)["taskDefinition"] == td2


def test_batch_reads_have_the_documented_limits_and_are_logged_with_their_size(sim):
    # DescribeServices takes up to 10 services, DescribeServiceDeployments up to 20 ARNs; the
    # call log says how many each call named.
    c, _ = setup_service(sim)
    before = len(json.loads(urllib.request.urlopen(sim + "/_sim/log").read()))
    out = raw(sim, "DescribeServices", {"cluster": "shop", "services": ["web", "nope"]})
    assert [s["serviceName"] for s in out["services"]] == ["web"]
    assert [f["reason"] for f in out["failures"]] == ["MISSING"]
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "DescribeServices", {"cluster": "shop", "services": [f"s{i}" for i in range(11)]})
    assert e.value.error["__type"] == "InvalidParameterException"
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [f"arn:{i}" for i in range(21)]})
    assert e.value.error["__type"] == "InvalidParameterException"
    raw(sim, "DescribeServiceDeployments", {"serviceDeploymentArns": [f"arn:{i}" for i in range(20)]})
    log = json.loads(urllib.request.urlopen(sim + "/_sim/log").read())[before:]
    assert [(e["operation"], e.get("items")) for e in log] == [
        ("DescribeServices", 2), ("DescribeServices", 11), ("DescribeServiceDeployments", 21),
        ("DescribeServiceDeployments", 20)]
    c.describe_clusters(clusters=["shop"])
    assert "items" not in json.loads(urllib.request.urlopen(sim + "/_sim/log").read())[-1]
