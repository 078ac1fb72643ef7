"""An ECS rollout simulator for ferry's tests and demo (see ../README.md).

`Sim` is assembled from three parts: `world` (state, knobs, lookups, answer shapes),
`scheduler` (the clock that moves tasks and deployments), and `api` (the ECS operations).
`server` puts it behind HTTP. Standard library only.
"""
from .api import Api
from .scheduler import Scheduler
from .world import World


class Sim(Api, Scheduler, World):
    pass
