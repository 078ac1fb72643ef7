"""Regions in the simulator: one endpoint, one state per region, told apart by the SigV4 credential
scope (the region boto3 signs for), as if each region had its own endpoint. The control API takes
`?region=`, the app endpoint `/app/@<region>/...`; without them, the default region (`--region`).
Run: python3 -m pytest -q tests/ecs_sim
"""
import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from test_ecs_sim import make_sim, raw, sim, wait  # noqa: F401

EU, US = "eu-west-1", "us-east-1"
IMAGE_EU = "repo@sha256:" + "e" * 64
IMAGE_US = "repo@sha256:" + "a" * 64


def client(service, endpoint, region):
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def get(endpoint, path):
    try:
        with urllib.request.urlopen(endpoint + path) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(endpoint, path, body):
    req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def region_of(arn):
    return arn.split(":")[3]


def run_web(c, image):
    """Cluster `shop`, task definition `web`, service `web` (desired 1) running `image`, steady."""
    c.create_cluster(clusterName="shop")
    td = c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image}])
    svc = c.create_service(cluster="shop", serviceName="web", desiredCount=1,
                           taskDefinition=td["taskDefinition"]["taskDefinitionArn"])["service"]
    wait(lambda: c.describe_services(cluster="shop", services=["web"])["services"][0]["deployments"][0]
         ["rolloutState"] == "COMPLETED")
    return td["taskDefinition"], svc


def test_each_region_has_its_own_state_and_arns(sim):
    eu, us = client("ecs", sim, EU), client("ecs", sim, US)
    cluster = eu.create_cluster(clusterName="shop")["cluster"]
    assert cluster["clusterArn"] == "arn:aws:ecs:eu-west-1:123456789012:cluster/shop"
    # Not visible from us-east-1: by name, or by ARN.
    assert us.describe_clusters(clusters=["shop"])["failures"][0]["reason"] == "MISSING"
    with pytest.raises(us.exceptions.ClusterNotFoundException):
        us.describe_services(cluster="shop", services=["web"])
    assert us.list_task_definitions()["taskDefinitionArns"] == []

    td_eu, svc_eu = run_web(eu, IMAGE_EU)
    assert td_eu["taskDefinitionArn"] == "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1"
    assert svc_eu["serviceArn"] == "arn:aws:ecs:eu-west-1:123456789012:service/shop/web"
    assert svc_eu["clusterArn"] == cluster["clusterArn"]
    with pytest.raises(us.exceptions.ClientException):
        us.describe_task_definition(taskDefinition="web")

    # The same names in us-east-1 are other resources, numbered on their own.
    td_us, svc_us = run_web(us, IMAGE_US)
    assert td_us["taskDefinitionArn"] == "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
    assert svc_us["serviceArn"] == "arn:aws:ecs:us-east-1:123456789012:service/shop/web"
    assert us.describe_task_definition(taskDefinition="web")["taskDefinition"]["containerDefinitions"][0]["image"] == IMAGE_US
    assert eu.describe_task_definition(taskDefinition="web")["taskDefinition"]["containerDefinitions"][0]["image"] == IMAGE_EU
    # An ARN of another region names nothing here, even where a resource of that name exists.
    with pytest.raises(us.exceptions.ClusterNotFoundException):
        us.describe_services(cluster=cluster["clusterArn"], services=["web"])
    with pytest.raises(us.exceptions.ClientException):
        us.describe_task_definition(taskDefinition=td_eu["taskDefinitionArn"])
    assert us.describe_services(cluster="shop", services=[svc_eu["serviceArn"]])["failures"][0]["reason"] == "MISSING"

    # Service deployments, revisions and tasks carry their region; another region does not find them.
    sds = eu.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]
    assert len(sds) == 1 and region_of(sds[0]["serviceDeploymentArn"]) == EU
    assert sds[0]["serviceDeploymentArn"].startswith("arn:aws:ecs:eu-west-1:123456789012:service-deployment/shop/web/")
    assert region_of(sds[0]["targetServiceRevisionArn"]) == EU
    assert eu.describe_service_deployments(serviceDeploymentArns=[sds[0]["serviceDeploymentArn"]])["serviceDeployments"]
    assert us.describe_service_deployments(serviceDeploymentArns=[sds[0]["serviceDeploymentArn"]])["failures"]
    assert us.describe_service_revisions(serviceRevisionArns=[sds[0]["targetServiceRevisionArn"]])["failures"]
    tasks = eu.list_tasks(cluster="shop", serviceName="web")["taskArns"]
    assert tasks and all(region_of(t) == EU for t in tasks)
    assert all(region_of(t) == US for t in us.list_tasks(cluster="shop", serviceName="web")["taskArns"])
    # Deleting in one region leaves the other alone.
    eu.delete_service(cluster="shop", service="web")
    assert us.describe_services(cluster="shop", services=["web"])["services"][0]["status"] == "ACTIVE"


def test_control_api_and_app_endpoint_per_region(sim):
    eu, us = client("ecs", sim, EU), client("ecs", sim, US)
    # How images behave is the simulator's, for every region: declared once, without a region.
    assert post(sim, "/_sim/images", {"image": IMAGE_EU, "version": "2.0.0"})[0] == 200
    assert post(sim, "/_sim/images", {"image": IMAGE_US, "version": "1.0.0"})[0] == 200
    td_eu, _ = run_web(eu, IMAGE_EU)   # the one clock moves both regions
    td_us, _ = run_web(us, IMAGE_US)

    # The app endpoint: no prefix is the default region, /app/@<region>/ another.
    assert get(sim, "/app/shop/web/health") == (200, {"status": "ok", "version": "1.0.0",
                                                      "taskDefinition": td_us["taskDefinitionArn"]})
    assert get(sim, "/app/@eu-west-1/shop/web/health") == (200, {"status": "ok", "version": "2.0.0",
                                                                 "taskDefinition": td_eu["taskDefinitionArn"]})
    assert get(sim, "/app/@us-east-1/shop/web/health")[1]["version"] == "1.0.0"
    assert get(sim, "/app/@eu-central-1/shop/web/health")[0] == 404
    assert get(sim, "/app/@eu-west-1/shop/web/test/health")[0] == 404   # a rolling service has no test listener
    assert get(sim, "/app/@Mars/shop/web/health")[0] == 404
    assert get(sim, "/app/@/shop/web/health")[0] == 404

    # State: the default region's, or ?region='s.
    state = get(sim, "/_sim/state")[1]
    assert state["region"] == US and [region_of(s["serviceArn"]) for s in state["services"]] == [US]
    state = get(sim, "/_sim/state?region=eu-west-1")[1]
    assert state["region"] == EU and [region_of(s["serviceArn"]) for s in state["services"]] == [EU]
    assert {region_of(sd["serviceDeploymentArn"]) for sd in state["serviceDeployments"]} == {EU}
    assert get(sim, "/_sim/state?region=not_a_region")[0] == 400

    # Knobs: ?region= sets that region's; none sets the default region's.
    assert post(sim, "/_sim/deny?region=eu-west-1", {"operations": ["ListServiceDeployments"]})[0] == 200
    with pytest.raises(eu.exceptions.AccessDeniedException):
        eu.list_service_deployments(cluster="shop", service="web")
    assert us.list_service_deployments(cluster="shop", service="web")["serviceDeployments"]
    post(sim, "/_sim/faults", {"operation": "DescribeClusters", "error": "ClientException", "count": 1})
    assert eu.describe_clusters(clusters=["shop"])["clusters"]
    with pytest.raises(us.exceptions.ClientException):
        us.describe_clusters(clusters=["shop"])
    post(sim, "/_sim/alarms?region=eu-west-1", {"name": "web-5xx", "state": "ALARM"})
    assert get(sim, "/_sim/state?region=eu-west-1")[1]["alarms"] == {"web-5xx": "ALARM"}
    assert get(sim, "/_sim/state")[1]["alarms"] == {}
    post(sim, "/_sim/capacity?region=eu-west-1", {"cluster": "shop", "available": False})
    assert get(sim, "/_sim/state?region=eu-west-1")[1]["clustersWithoutCapacity"] == ["shop"]
    assert get(sim, "/_sim/state")[1]["clustersWithoutCapacity"] == []
    assert post(sim, "/_sim/lag?region=eu-west-1", {"seconds": 3})[0] == 200
    assert get(sim, "/_sim/state?region=eu-west-1")[1]["lag"]["default"] == 3.0
    assert get(sim, "/_sim/state")[1]["lag"]["default"] == 0.0
    assert post(sim, "/_sim/deny?region=EU", {"operations": []})[0] == 400

    # Calls and the log cover every region, each entry with its region; ?region= narrows them.
    eu_calls = get(sim, "/_sim/calls?region=eu-west-1")[1]
    us_calls = get(sim, "/_sim/calls?region=us-east-1")[1]
    everything = get(sim, "/_sim/calls")[1]
    assert eu_calls["CreateCluster"] == us_calls["CreateCluster"] == 1 and everything["CreateCluster"] == 2
    assert everything["ListServiceDeployments"] == eu_calls["ListServiceDeployments"] + us_calls["ListServiceDeployments"]
    log = get(sim, "/_sim/log")[1]
    assert all(set(e) - {"items"} == {"at", "operation", "region"} for e in log)
    assert [e["region"] for e in log if e["operation"] == "CreateCluster"] == [EU, US]
    assert {e["region"] for e in get(sim, "/_sim/log?region=eu-west-1")[1]} == {EU}
    assert len(get(sim, "/_sim/log?region=eu-west-1")[1]) == sum(eu_calls.values())


def test_codedeploy_and_scaling_per_region(sim):
    eu = client("ecs", sim, EU)
    run_web(eu, IMAGE_EU)
    cd_eu, cd_us = client("codedeploy", sim, EU), client("codedeploy", sim, US)
    cd_eu.create_application(applicationName="shop", computePlatform="ECS")
    assert cd_eu.get_application(applicationName="shop")["application"]["applicationName"] == "shop"
    with pytest.raises(cd_us.exceptions.ApplicationDoesNotExistException):
        cd_us.get_application(applicationName="shop")
    as_eu, as_us = client("application-autoscaling", sim, EU), client("application-autoscaling", sim, US)
    target = {"ServiceNamespace": "ecs", "ResourceId": "service/shop/web", "ScalableDimension": "ecs:service:DesiredCount"}
    arn = as_eu.register_scalable_target(**target, MinCapacity=1, MaxCapacity=3)["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:eu-west-1:123456789012:scalable-target/")
    assert as_us.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    with pytest.raises(as_us.exceptions.ValidationException):   # no such ECS service in us-east-1
        as_us.register_scalable_target(**target, MinCapacity=1, MaxCapacity=3)
    status, out = post(sim, "/_sim/scaling?region=eu-west-1", {"cluster": "shop", "service": "web", "desired": 2})
    assert status == 200
    assert eu.describe_services(cluster="shop", services=["web"])["services"][0]["desiredCount"] == 2
    assert get(sim, "/_sim/state?region=eu-west-1")[1]["scalableTargets"][0]["ScalableTargetARN"] == arn


def test_default_region_answers_unsigned_requests_and_bad_scopes_are_refused(make_sim):
    endpoint = make_sim("--region", "eu-central-1")
    # No Authorization header (raw() sends none): the default region.
    arn = raw(endpoint, "CreateCluster", {"clusterName": "shop"})["cluster"]["clusterArn"]
    assert arn == "arn:aws:ecs:eu-central-1:123456789012:cluster/shop"
    assert client("ecs", endpoint, "eu-central-1").describe_clusters(clusters=["shop"])["clusters"][0]["clusterArn"] == arn
    assert client("ecs", endpoint, US).describe_clusters(clusters=["shop"])["failures"]
    assert get(endpoint, "/_sim/state")[1]["region"] == "eu-central-1"
    # A credential scope naming no region is refused, as AWS refuses a badly scoped signature.
    req = urllib.request.Request(endpoint + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/Nowhere!/ecs/aws4_request, "
                         "SignedHeaders=host, Signature=00"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403 and json.loads(e.value.read())["__type"] == "InvalidSignatureException"
