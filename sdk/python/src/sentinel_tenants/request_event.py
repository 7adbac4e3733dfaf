"""What the ASGI and WSGI middlewares share: turning one finished request into one event.

Owns the rule that nothing the SDK (or the app's tenant callable) does may fail the request.
"""

from __future__ import annotations

import time
import warnings
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


def header_source(
    middleware: str,
    example: str,
    tenant: Callable[..., str | None] | None,
    tenant_header: str | None,
    header: str | None,
) -> str | None:
    """Which request header names the tenant, or None when the app's `tenant` callable does.

    The tenant is the app's to say (whom it authenticated): a header the client sends can name
    any tenant, so reading one is opt-in (`tenant_header=`). Choosing neither is an error at
    construction, not a middleware that silently trusts clients.
    """
    if header is not None:
        warnings.warn(
            f"{middleware}(header=...) is deprecated: pass tenant_header=... (clients can set"
            " this header to any tenant) or, better, tenant=callable",
            DeprecationWarning,
            stacklevel=3,
        )
        if tenant_header is None:
            tenant_header = header
    if tenant is not None and tenant_header is not None:
        raise TypeError(f"{middleware}: pass tenant= or tenant_header=, not both")
    if tenant is None and tenant_header is None:
        raise TypeError(
            f"{middleware} needs tenant=, a callable returning the tenant your app authenticated"
            f" (e.g. tenant={example}); reading a request header instead is opt-in and"
            ' spoofable by clients: tenant_header="X-Tenant-Id"'
        )
    return tenant_header
