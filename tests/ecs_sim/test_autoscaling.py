"""Application Auto Scaling in the simulator, and the AWS CLI's own `aws ecs deploy` run against
it. Answers are checked against botocore's application-autoscaling model the way test_ecs_sim.py
checks ECS and CodeDeploy answers. Run: python3 -m pytest -q tests/ecs_sim

`aws ecs deploy` polls CodeDeploy every 15 seconds (its waiter's delay), so it is started once,
in the background, when this module's first test starts, and checked by its last test.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from test_ecs_sim import (SCALE, appspec, codedeploy, control, describe, health, make_sim, new_revision, raw,  # noqa: F401
                          setup_blue_green, setup_service, sim, sim_state, start_sim, steady, wait)

AAS = "application-autoscaling"
RID = "service/shop/web"
DIM = "ecs:service:DesiredCount"
TARGET = {"ServiceNamespace": "ecs", "ResourceId": RID, "ScalableDimension": DIM}


def aas(endpoint):
    return boto3.client(AAS, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def scaling(endpoint, **body):
    """POST /_sim/scaling; returns its answer (what happened)."""
    req = urllib.request.Request(f"{endpoint}/_sim/scaling", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def target(a):
    return a.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[RID])["ScalableTargets"][0]


def running(c, td=None):
    arns = c.list_tasks(cluster="shop", serviceName="web")["taskArns"]
    tasks = c.describe_tasks(cluster="shop", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] == "RUNNING" and (td is None or t["taskDefinitionArn"] == td)]


def suspend(a, **state):
    a.register_scalable_target(**TARGET, SuspendedState=state)


# ---------- `aws ecs deploy`, started in the background (see the module docstring)
TASKDEF = {"family": "web", "containerDefinitions": [{"name": "web", "image": "repo@sha256:" + "d" * 64, "essential": True}]}
APPSPEC = """version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "<TASK_DEFINITION>"
        LoadBalancerInfo:
          ContainerName: "web"
          ContainerPort: 8080
"""


@pytest.fixture(scope="module", autouse=True)
def cli_deploy():
    endpoint, sim_proc = start_sim("--time-scale", str(SCALE))
    c, _, _ = setup_blue_green(endpoint)
    control(endpoint, "images", {"image": TASKDEF["containerDefinitions"][0]["image"], "version": "2.0.0"})
    tmp = tempfile.TemporaryDirectory()
    td_file, spec_file = os.path.join(tmp.name, "taskdef.json"), os.path.join(tmp.name, "appspec.yaml")
    with open(td_file, "w") as f:
        json.dump(TASKDEF, f)
    with open(spec_file, "w") as f:
        f.write(APPSPEC)
    # ECS through --endpoint-url; the command's CodeDeploy client takes no --endpoint-url, only the
    # SDKs' service-specific endpoint variable.
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL_CODEDEPLOY=endpoint)
    proc = subprocess.Popen([sys.executable, "-m", "awscli", "ecs", "deploy", "--endpoint-url", endpoint,
                             "--cluster", "shop", "--service", "web", "--task-definition", td_file,
                             "--codedeploy-appspec", spec_file, "--codedeploy-application", "shop",
                             "--codedeploy-deployment-group", "web"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield {"endpoint": endpoint, "proc": proc, "ecs": c}
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
    sim_proc.terminate()
    sim_proc.wait(timeout=10)
    tmp.cleanup()


# ---------- conformance
def test_autoscaling_answers_match_the_service_model(sim):
    c, _ = setup_service(sim)
    out = raw(sim, "RegisterScalableTarget", dict(TARGET, MinCapacity=1, MaxCapacity=4, Tags={"team": "shop"}), AAS)
    arn = out["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/")
    st = raw(sim, "DescribeScalableTargets", {"ServiceNamespace": "ecs", "ResourceIds": [RID]}, AAS)["ScalableTargets"][0]
    assert st["SuspendedState"] == {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                                    "ScheduledScalingSuspended": False}
    assert "AWSServiceRoleForApplicationAutoScaling_ECSService" in st["RoleARN"]
    raw(sim, "TagResource", {"ResourceARN": arn, "Tags": {"ferry:hold": "run-1"}}, AAS)
    assert raw(sim, "ListTagsForResource", {"ResourceARN": arn}, AAS)["Tags"] == {"team": "shop", "ferry:hold": "run-1"}
    raw(sim, "UntagResource", {"ResourceARN": arn, "TagKeys": ["ferry:hold"]}, AAS)
    assert raw(sim, "ListTagsForResource", {"ResourceARN": arn}, AAS)["Tags"] == {"team": "shop"}
    pol = raw(sim, "PutScalingPolicy", dict(TARGET, PolicyName="cpu", PolicyType="TargetTrackingScaling",
                                            TargetTrackingScalingPolicyConfiguration={
                                                "TargetValue": 60.0, "PredefinedMetricSpecification": {
                                                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}), AAS)
    assert len(pol["Alarms"]) == 2
    raw(sim, "DescribeScalingPolicies", {"ServiceNamespace": "ecs", "ResourceId": RID}, AAS)
    scaling(sim, cluster="shop", service="web", direction="out", policy="cpu")
    scaling(sim, cluster="shop", service="web", desired=9)              # beyond MaxCapacity: 4
    scaling(sim, cluster="shop", service="web", desired=9)              # already at 4: not scaled
    acts = raw(sim, "DescribeScalingActivities", dict(TARGET, IncludeNotScaledActivities=True), AAS)["ScalingActivities"]
    assert [a["StatusCode"] for a in acts] == ["Failed", "Successful", "Successful"]
    assert acts[0]["NotScaledReasons"][0] == {"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 4, "MinCapacity": 1,
                                              "CurrentCapacity": 4}
    assert acts[2]["Cause"] == "monitor alarm cpu in state ALARM triggered policy cpu"
    assert acts[2]["StatusMessage"] == "Successfully set desired count to 3. Change successfully fulfilled by ecs."
    plain = raw(sim, "DescribeScalingActivities", {"ServiceNamespace": "ecs", "ResourceId": RID}, AAS)["ScalingActivities"]
    assert len(plain) == 2, "not scaled activities only with IncludeNotScaledActivities"
    # Errors, each a documented one.
    for op, body, code in [
        ("RegisterScalableTarget", dict(TARGET, ResourceId="service/shop/nope", MinCapacity=1, MaxCapacity=2), "ValidationException"),
        ("RegisterScalableTarget", dict(TARGET, MinCapacity=5, MaxCapacity=2), "ValidationException"),
        ("TagResource", {"ResourceARN": arn + "0", "Tags": {"a": "b"}}, "ResourceNotFoundException"),
        ("DescribeScalableTargets", {"ServiceNamespace": "ecs", "NextToken": "garbage"}, "InvalidNextTokenException"),
        ("PutScalingPolicy", dict(TARGET, ResourceId="service/shop/other", PolicyName="p", PolicyType="StepScaling",
                                  StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity"}), "ObjectNotFoundException"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as e:
            raw(sim, op, body, AAS)
        assert e.value.error["__type"] == code, (op, e.value.error)
    raw(sim, "DeregisterScalableTarget", TARGET, AAS)
    with pytest.raises(urllib.error.HTTPError) as e:
        raw(sim, "DeregisterScalableTarget", TARGET, AAS)
    assert e.value.error["__type"] == "ObjectNotFoundException"
    assert raw(sim, "DescribeScalingPolicies", {"ServiceNamespace": "ecs"}, AAS)["ScalingPolicies"] == []
    calls = json.loads(urllib.request.urlopen(sim + "/_sim/calls").read())
    assert calls["application-autoscaling:RegisterScalableTarget"] >= 2
    assert describe(c)["desiredCount"] == 4


def test_boto3_and_the_aws_cli_read_scalable_targets_page_by_page(sim):
    c, td = setup_service(sim)
    c.create_service(cluster="shop", serviceName="api", taskDefinition=td, desiredCount=1)
    a = aas(sim)
    a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    a.register_scalable_target(**dict(TARGET, ResourceId="service/shop/api"), MinCapacity=1, MaxCapacity=2)
    pages = list(a.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="ecs", PaginationConfig={"PageSize": 1}))
    assert [[t["ResourceId"] for t in p["ScalableTargets"]] for p in pages] == [[RID], ["service/shop/api"]]
    assert hasattr(pages[0]["ScalableTargets"][0]["CreationTime"], "year"), "boto3 parses timestamps"
    assert a.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=["service/shop/api"])["ScalableTargets"][0]["MaxCapacity"] == 2
    assert a.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"] == []
    # The seeds' commands: the AWS CLI suspends and reads back.
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    aws = [sys.executable, "-m", "awscli", "application-autoscaling", "--endpoint-url", sim]
    subprocess.run(aws + ["register-scalable-target", "--service-namespace", "ecs", "--scalable-dimension", DIM,
                          "--resource-id", RID, "--suspended-state",
                          "DynamicScalingInSuspended=true,DynamicScalingOutSuspended=true,ScheduledScalingSuspended=true"],
                   env=env, capture_output=True, text=True, check=True)
    out = subprocess.run(aws + ["describe-scalable-targets", "--service-namespace", "ecs", "--resource-ids", RID,
                                "--output", "json"], env=env, capture_output=True, text=True, check=True)
    st = json.loads(out.stdout)["ScalableTargets"][0]
    assert st["SuspendedState"] == {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True,
                                    "ScheduledScalingSuspended": True}
    assert (st["MinCapacity"], st["MaxCapacity"]) == (1, 4)
    # A role without the permission: denied like any other operation.
    control(sim, "deny", {"operations": ["RegisterScalableTarget"]})
    with pytest.raises(a.exceptions.ClientError) as e:
        a.register_scalable_target(**TARGET, SuspendedState={"DynamicScalingInSuspended": False})
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "application-autoscaling:RegisterScalableTarget" in e.value.response["Error"]["Message"]
    control(sim, "deny", {"operations": []})


# ---------- RegisterScalableTarget is an upsert
def test_register_is_an_upsert_and_keeps_what_it_does_not_name(sim):
    c, _ = setup_service(sim)
    a = aas(sim)
    with pytest.raises(a.exceptions.ValidationException):
        a.register_scalable_target(**TARGET, MaxCapacity=4)          # a new target needs both bounds
    a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4, RoleARN="arn:aws:iam::123456789012:role/scaling")
    first = target(a)
    suspend(a, DynamicScalingInSuspended=True)
    st = target(a)
    assert (st["MinCapacity"], st["MaxCapacity"], st["RoleARN"]) == (1, 4, "arn:aws:iam::123456789012:role/scaling")
    assert st["SuspendedState"] == {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False,
                                    "ScheduledScalingSuspended": False}
    suspend(a, DynamicScalingOutSuspended=True)                      # the other flags keep their values
    assert target(a)["SuspendedState"] == {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True,
                                           "ScheduledScalingSuspended": False}
    a.register_scalable_target(**TARGET, MaxCapacity=6)
    st = target(a)
    assert (st["MinCapacity"], st["MaxCapacity"], st["SuspendedState"]["DynamicScalingInSuspended"]) == (1, 6, True)
    assert (st["ScalableTargetARN"], st["CreationTime"]) == (first["ScalableTargetARN"], first["CreationTime"])
    with pytest.raises(a.exceptions.ValidationException):
        a.register_scalable_target(**TARGET, MinCapacity=7)           # above the kept MaxCapacity
    # A new minimum above the desired count moves the service into the range.
    a.register_scalable_target(**TARGET, MinCapacity=3)
    assert describe(c)["desiredCount"] == 3
    act = a.describe_scaling_activities(**TARGET)["ScalingActivities"][0]
    assert (act["Description"], act["Cause"]) == ("Setting desired count to 3.", "minimum capacity was set to 3")
    wait(lambda: len(running(c)) == 3)
    # UpdateService's desiredCount moves the same tasks.
    c.update_service(cluster="shop", service="web", desiredCount=1)
    wait(lambda: len(running(c)) == 1)


# ---------- suspension, per direction and kind
def test_suspension_stops_each_kind_of_scaling_separately(sim):
    c, _ = setup_service(sim)
    a = aas(sim)
    a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=6)
    suspend(a, DynamicScalingOutSuspended=True)
    r = scaling(sim, cluster="shop", service="web", direction="out")
    assert (r["scaled"], r["reason"], r["desiredCount"]) == (False, "DynamicScalingOutSuspended", 2)
    r = scaling(sim, cluster="shop", service="web", direction="out", kind="scheduled")
    assert (r["scaled"], r["desiredCount"]) == (True, 3), "scheduled scaling is not dynamic scale-out"
    suspend(a, DynamicScalingOutSuspended=False, DynamicScalingInSuspended=True)
    r = scaling(sim, cluster="shop", service="web", direction="in")
    assert (r["scaled"], r["reason"]) == (False, "DynamicScalingInSuspended")
    assert scaling(sim, cluster="shop", service="web", direction="out")["desiredCount"] == 4
    suspend(a, DynamicScalingInSuspended=False, ScheduledScalingSuspended=True)
    for direction in ("in", "out"):
        r = scaling(sim, cluster="shop", service="web", direction=direction, kind="scheduled")
        assert (r["scaled"], r["reason"]) == (False, "ScheduledScalingSuspended")
    assert scaling(sim, cluster="shop", service="web", desired=2)["scaled"]
    assert describe(c)["desiredCount"] == 2
    # Suspended triggers leave no AWS scaling activity; the simulator's state lists them.
    acts = a.describe_scaling_activities(**TARGET, IncludeNotScaledActivities=True)["ScalingActivities"]
    assert [x["Description"] for x in acts] == ["Setting desired count to 2.", "Setting desired count to 4.",
                                                "Setting desired count to 3."]
    triggers = sim_state(sim)["scalingTriggers"]
    assert [t["reason"] for t in triggers if not t["scaled"]] == [
        "DynamicScalingOutSuspended", "DynamicScalingInSuspended", "ScheduledScalingSuspended", "ScheduledScalingSuspended"]
    # The control endpoint refuses what it cannot do.
    for body in ({"cluster": "shop", "service": "nope", "direction": "out"}, {"cluster": "shop", "service": "web"},
                 {"cluster": "shop", "service": "web", "direction": "out", "kind": "weekly"}):
        with pytest.raises(urllib.error.HTTPError) as e:
            scaling(sim, **body)
        assert e.value.code == 400


# ---------- the documented interaction with ECS deployments
def test_scale_in_is_off_during_a_deployment_and_scale_out_launches_the_primary_revision(sim):
    c, td1 = setup_service(sim)
    a = aas(sim)
    a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=6)
    image = "repo@sha256:" + "e" * 64
    control(sim, "images", {"image": image, "version": "2.0.0", "start_seconds": 1.5})
    td2 = c.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": image}])["taskDefinition"]["taskDefinitionArn"]
    c.update_service(cluster="shop", service="web", taskDefinition=td2)
    r = scaling(sim, cluster="shop", service="web", direction="in")
    assert (r["scaled"], r["reason"], r["desiredCount"]) == (False, "DeploymentInProgress", 2)
    r = scaling(sim, cluster="shop", service="web", direction="out", by=2)
    assert (r["scaled"], r["desiredCount"]) == (True, 4)
    wait(lambda: steady(c))
    svc = describe(c)
    assert (svc["taskDefinition"], svc["desiredCount"]) == (td2, 4)
    assert len(running(c, td2)) == 4 and not running(c, td1), "scale-out launched the PRIMARY deployment's revision"
    # Once the deployment completed, scale-in is back: it stops tasks.
    r = scaling(sim, cluster="shop", service="web", direction="in", by=3)
    assert (r["scaled"], r["desiredCount"]) == (True, 1)
    wait(lambda: len(running(c)) == 1)
    stopped = c.describe_tasks(cluster="shop", tasks=c.list_tasks(cluster="shop", serviceName="web",
                                                                  desiredStatus="STOPPED")["taskArns"])["tasks"]
    assert sum(1 for t in stopped if t["taskDefinitionArn"] == td2 and t["stoppedReason"].startswith("Scaling activity")) == 3


def test_a_scale_in_after_the_rollout_harms_without_a_hold_and_not_with_one(make_sim):
    """Between ECS's COMPLETED and a deploy tool's smoke checks, ECS no longer holds scale-in."""
    for hold in (False, True):
        sim = make_sim()
        c, _ = setup_service(sim)
        a = aas(sim)
        a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
        if hold:
            suspend(a, DynamicScalingInSuspended=True, DynamicScalingOutSuspended=True, ScheduledScalingSuspended=True)
        td2 = new_revision(c, sim, "repo@sha256:" + "f" * 64, "2.0.0", "healthy")
        c.update_service(cluster="shop", service="web", taskDefinition=td2)
        wait(lambda: steady(c) and describe(c)["taskDefinition"] == td2)
        r = scaling(sim, cluster="shop", service="web", direction="in")     # during the smoke checks
        if hold:
            assert (r["scaled"], r["reason"]) == (False, "DynamicScalingInSuspended")
            assert len(running(c, td2)) == 2
            suspend(a, DynamicScalingInSuspended=False, DynamicScalingOutSuspended=False, ScheduledScalingSuspended=False)
        else:
            assert r["scaled"]
            wait(lambda: len(running(c, td2)) == 1)
            assert health(sim, "shop", "web")[0] == 200


def test_a_code_deploy_service_scales_its_task_sets_and_holds_scale_in_during_a_deployment(sim):
    c, cd, td1 = setup_blue_green(sim, ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 30})
    a = aas(sim)
    a.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=4)
    td2 = new_revision(c, sim, "repo@sha256:" + "9" * 64, "2.0.0", "healthy")
    dep = cd.create_deployment(applicationName="shop", deploymentGroupName="web",
                               revision=appspec(td2))["deploymentId"]
    wait(lambda: cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"] == "Ready")
    r = scaling(sim, cluster="shop", service="web", direction="in")
    assert (r["scaled"], r["reason"]) == (False, "DeploymentInProgress")
    assert scaling(sim, cluster="shop", service="web", direction="out")["desiredCount"] == 3
    wait(lambda: [ts["computedDesiredCount"] for ts in describe(c)["taskSets"]] == [3, 3])
    wait(lambda: all(ts["runningCount"] == 3 for ts in describe(c)["taskSets"]))


# ---------- the AWS CLI's `aws ecs deploy` (CodeDeploy blue/green), started by the fixture
def test_aws_ecs_deploy_runs_end_to_end(cli_deploy):
    proc = cli_deploy["proc"]
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    td = out.split("Successfully registered new ECS task definition ", 1)[1].split("\n", 1)[0]
    assert td.endswith(":task-definition/web:2"), out
    assert f"Successfully deployed {td} to service 'web'" in out
    c = cli_deploy["ecs"]
    assert describe(c)["taskDefinition"] == td
    assert {health(cli_deploy["endpoint"], "shop", "web")[1]["version"] for _ in range(4)} == {"2.0.0"}
    cd = codedeploy(cli_deploy["endpoint"])
    dep = cd.list_deployments(applicationName="shop", deploymentGroupName="web")["deployments"][0]
    info = cd.get_deployment(deploymentId=dep)["deploymentInfo"]
    assert info["status"] == "Succeeded"
    assert json.loads(info["revision"]["appSpecContent"]["content"])["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"] == td
    calls = json.loads(urllib.request.urlopen(cli_deploy["endpoint"] + "/_sim/calls").read())
    assert calls["codedeploy:GetApplication"] == 1 and calls["codedeploy:GetDeploymentGroup"] == 1
