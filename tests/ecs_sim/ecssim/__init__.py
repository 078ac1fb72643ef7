"""An ECS rollout simulator for ferry's tests and demo (see ../README.md).

`Sim` is assembled from these parts: `world` (state, knobs, lookups, answer shapes),
`scheduler` (the clock that moves tasks and deployments), `api` (the ECS operations),
`codedeploy` (CodeDeploy's ECS blue/green deployments over the same services) and `autoscaling`
(Application Auto Scaling's scalable targets for the same services).
`Regions` keeps one `Sim` per region (`regions`); `server` puts them behind HTTP. Standard library only.
"""
from .api import Api
from .autoscaling import AutoScaling
from .codedeploy import CodeDeploy
from .native import Native
from .regions import Regions  # noqa: F401
from .scheduler import Scheduler
from .world import World


class Sim(Api, AutoScaling, CodeDeploy, Native, Scheduler, World):
    def __init__(self, *a, **k):
        World.__init__(self, *a, **k)
        self.cd_init()
        self.as_init()
