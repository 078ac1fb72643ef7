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


@pytest.fixture
def sim():
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "ecs_sim.py"), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("ECS_SIM_ENDPOINT="), line
    endpoint = line.split("=", 1)[1]
    yield endpoint
    p.terminate()
    p.wait(timeout=10)


def ecs(endpoint):
    # Own retry settings: the world's environment may set AWS_MAX_ATTEMPTS low.
    return boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def raw(endpoint, op, body):
    """The simulator's answer as bytes on the wire, validated against the service model."""
    req = urllib.request.Request(endpoint + "/", data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{op}", "Content-Type": "application/x-amz-json-1.1"})
    try:
        with urllib.request.urlopen(req) as r:
            assert r.headers["Content-Type"] == "application/x-amz-json-1.1"
            out = json.loads(r.read())
    except urllib.error.HTTPError as e:
        err = json.loads(e.read())
        known = {s.name for s in MODEL.operation_model(op).error_shapes} | {"ThrottlingException", "ServerException", "ClientException"}
        assert err["__type"] in known, f"{op}: undocumented error {err['__type']}"
        raise
    check_shape(out, MODEL.operation_model(op).output_shape, op)
    return out


def check_shape(value, shape, path):
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: expected an object"
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


def health(endpoint, cluster, service):
    try:
        with urllib.request.urlopen(f"{endpoint}/app/{cluster}/{service}/health") as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def setup_service(endpoint, image="repo@sha256:" + "1" * 64, version="1.0.0", breaker=True):
    control(endpoint, "images", {"image": image, "version": version, "behavior": "healthy"})
    c = ecs(endpoint)
    c.create_cluster(clusterName="shop")
    td = c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image, "essential": True}],
                                    tags=[{"key": "team", "value": "shop"}])["taskDefinition"]["taskDefinitionArn"]
    c.create_service(cluster="shop", serviceName="web", taskDefinition=td, desiredCount=2,
                     deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100,
                                              "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker}},
                     networkConfiguration={"awsvpcConfiguration": {"subnets": ["s"], "securityGroups": ["g"]}})
    wait(lambda: steady(c))
    return c, td


def steady(c):
    d = c.describe_services(cluster="shop", services=["web"])["services"][0]["deployments"]
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
