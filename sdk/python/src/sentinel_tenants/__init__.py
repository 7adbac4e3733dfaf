"""Per-tenant request events for Sentinel: a background client and ASGI/WSGI middlewares.

`SentinelClient` batches events to sentineld's `POST /v1/events`; the middlewares feed it one event
per request. Nothing here blocks or fails the app's requests.
"""

from .asgi import SentinelMiddleware
from .client import DEFAULT_URL, SentinelClient, Stats
from .wsgi import SentinelWSGIMiddleware

__all__ = ["DEFAULT_URL", "SentinelClient", "SentinelMiddleware", "SentinelWSGIMiddleware", "Stats"]
__version__ = "0.1.0"
