#!/usr/bin/env python3
"""An ECS rollout simulator for ferry's tests and demo.

Nothing local runs ECS rollouts (moto's deployments never progress or fail), so this speaks
the ECS JSON protocol (awsJson1_1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>`)
and moves deployments forward in real time, as ECS documents them: tasks start, turn healthy,
crash, fail container or load balancer health checks, or cannot be placed; old tasks drain;
the deployment circuit breaker and deployment alarms fail deployments and roll them back to
the last COMPLETED deployment; the service-deployments API (ListServiceDeployments,
DescribeServiceDeployments, StopServiceDeployment, DescribeServiceRevisions) reports each
service deployment's life from PENDING to its end. Reads can lag behind writes (eventual
consistency), operations can be denied or rate limited. See README.md beside this file.

It also serves the app behind each service, like a load balancer: `GET
/app/<cluster>/<service>/health` answers from one healthy task, with the version of the image
that task really runs. How an image behaves is set through `/_sim/images`.

Each region has its own state, at the same endpoint: a request's region is the one its SigV4
credential scope names (`--region` without one). The control API takes `?region=`, the app
endpoint `/app/@<region>/<cluster>/<service>/health`.

    python3 tests/ecs_sim/ecs_sim.py --port 0      # prints ECS_SIM_ENDPOINT=http://127.0.0.1:PORT

Standard library only; binds loopback only. The code lives in the `ecssim` package beside
this file.
"""
import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ecssim import Regions, Sim  # noqa: E402
from ecssim.server import serve  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--account-id", default="123456789012")
    ap.add_argument("--region", default="us-east-1",
                    help="the default region: requests without a SigV4 credential scope, and the control API "
                         "and app endpoints without a region (each region has its own state)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiplies every simulated duration")
    ap.add_argument("--read-lag", type=float, default=0.0, metavar="SECONDS",
                    help="default read lag after UpdateService (eventual consistency); 0 = none")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("ecs-sim: binds loopback only")
    server, stop = serve(Regions(Sim, a.account_id, a.region, a.time_scale, a.read_lag), a.host, a.port)
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), threading.Thread(target=server.shutdown).start()))
    print(f"ECS_SIM_ENDPOINT=http://{a.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    stop.set()


if __name__ == "__main__":
    main()
