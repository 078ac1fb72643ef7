"""One simulator, many regions, one endpoint.

AWS answers each region at its own endpoint, with its own resources; a SigV4 request names its
region in the credential scope of its `Authorization` header
(`Credential=AKID/yyyymmdd/REGION/service/aws4_request`). The simulator serves every region at
one URL and tells them apart by that scope: each region is its own `Sim` (clusters, services,
task definitions, deployments, CodeDeploy, scalable targets, and the knobs of the control API),
created on first use, with that region in its ARNs. A request without a SigV4 header belongs to
the default region (`--region`). All regions share one lock, so one clock moves them all, and
share how images behave, timing and the call log (see `world.shared_parts`).
"""
import re

from .util import ApiError
from .world import shared_parts

# us-east-1, eu-west-1, ap-southeast-2, us-gov-west-1, cn-north-1, eusc-de-east-1, ...
REGION_NAME = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$")
CREDENTIAL = re.compile(r"Credential=([^,\s]+)")


class BadRegion(Exception):
    pass


class Regions:
    def __init__(self, sim_class, account, default_region, scale, read_lag=0.0):
        self.sim_class, self.account, self.scale, self.read_lag = sim_class, account, scale, read_lag
        self.default = default_region
        self.shared = shared_parts()
        self.lock = self.shared["lock"]
        self.sims = {}   # region -> Sim
        self.get(default_region)

    def valid(self, region):
        return region == self.default or bool(REGION_NAME.match(region or ""))

    def get(self, region=None):
        """The region's simulator (created on first use); the default region's for None."""
        region = self.default if region is None else region
        if not self.valid(region):
            raise BadRegion(f"{region!r} is not a region name")
        with self.lock:
            sim = self.sims.get(region)
            if sim is None:
                sim = self.sims[region] = self.sim_class(self.account, region, self.scale, self.read_lag,
                                                         shared=self.shared)
            return sim

    def for_request(self, authorization):
        """The simulator of a request's region, from its SigV4 credential scope (ApiError if the
        scope names no valid region, as AWS refuses it)."""
        m = CREDENTIAL.search(authorization or "")
        scope = m.group(1).split("/") if m else []
        if len(scope) != 5 or scope[4] != "aws4_request":   # not a SigV4 scope (SigV4a names no region)
            return self.get()
        try:
            return self.get(scope[2])
        except BadRegion:
            raise ApiError("InvalidSignatureException", "Credential should be scoped to a valid region.", 403)

    def all(self):
        with self.lock:
            return list(self.sims.values())

    def tick(self):
        """Moves every region on; a region whose tick fails does not hold the others back."""
        failed = None
        with self.lock:
            for sim in list(self.sims.values()):
                try:
                    sim.tick()
                except Exception as e:  # noqa: BLE001 (the clock reports it)
                    failed = failed or e
        if failed is not None:
            raise failed
