"""What the ASGI and WSGI middlewares share: turning one finished request into one event.

Owns the rule that nothing the SDK (or the app's tenant callable) does may fail the request.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from .client import SentinelClient

Source = TypeVar("Source")  # the ASGI scope or the WSGI environ


def record_request(
    client: SentinelClient,
    tenant_of: Callable[[Source], str | None],
    source: Source,
    endpoint_of: Callable[[], str],
    status_code: int,
    started: float,
) -> None:
    """Record one request that began at `started` (a perf_counter reading); never raises.

    A request with no tenant is not recorded: it cannot be charged to anyone.
    """
    try:
        latency_ms = (time.perf_counter() - started) * 1000.0
        tenant = tenant_of(source)
        if tenant:
            client.record(tenant, endpoint_of(), status_code, latency_ms)
    except Exception:
        client._count_error()
