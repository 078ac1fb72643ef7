"""Small helpers shared by the simulator's modules."""
import random
import threading
import time
import uuid


class ApiError(Exception):
    """An ECS error answer: `__type` code, message, HTTP status (ECS answers 400 for client errors)."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def now():
    return time.time()


def digits(n):
    return "".join(random.choice("0123456789") for _ in range(n))


def short_id():
    return uuid.uuid4().hex


def quiet(d):
    """A dict without the simulator's private keys (those starting with `_`) and empty values."""
    return {k: v for k, v in d.items() if not k.startswith("_") and v is not None}


class TokenBucket:
    """ECS throttles with a token bucket: `burst` tokens at most, refilled at `rate` per second."""

    def __init__(self, rate, burst=None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.tokens = self.burst
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            t = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (t - self.last) * self.rate)
            self.last = t
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False
