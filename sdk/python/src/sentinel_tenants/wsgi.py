"""WSGI middleware (Flask, Django, any PEP 3333 app): one event per HTTP request.

Owns reading status, route template, tenant and latency without changing the response; the request
ends when the server closes the response iterable, so streamed bodies count in full.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from .client import SentinelClient
from .request_event import header_source, record_request

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
TenantOf = Callable[[Environ], Optional[str]]

# Flask/werkzeug rule syntax `<int:user_id>` written the way ASGI frameworks do: `{user_id}`.
_RULE_VARIABLE = re.compile(r"<(?:[^<>:]*:)?([^<>:]+)>")


class SentinelWSGIMiddleware:
    """Wraps a WSGI app; `tenant(environ)` names the tenant the app authenticated.

    `tenant` is called when the response is closed, so what the app put in the environ is there.
    Reading a request header instead (`tenant_header=`) is opt-in: any client can send any tenant
    id in it. An exception from the app (when called or while iterating the body) is recorded as
    a 500 and re-raised as it was.
    """

    def __init__(
        self,
        app: WSGIApp,
        client: SentinelClient | None = None,
        tenant: TenantOf | None = None,
        tenant_header: str | None = None,
        header: str | None = None,
    ) -> None:
        chosen = header_source(
            "SentinelWSGIMiddleware",
            'lambda environ: environ.get("REMOTE_USER")',
            tenant,
            tenant_header,
            header,
        )
        self.app = app
        self.client = client if client is not None else SentinelClient()
        self._environ_key = "HTTP_" + (chosen or "").upper().replace("-", "_")
        self._tenant_of: TenantOf = tenant if tenant is not None else self._tenant_from_header

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        raw_path = _text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        seen: dict[str, Any] = {"status": 500, "template": None}

        def start_and_watch(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            try:
                seen["status"] = int(status.split(" ", 1)[0])
                # Flask drops its request object from environ once the app returns, so look now.
                seen["template"] = _flask_template(environ)
            except Exception:
                self.client._count_error()
            return start_response(status, headers, exc_info)

        def finish(failed: bool) -> None:
            record_request(
                self.client,
                self._tenant_of,
                environ,
                lambda: seen["template"] or raw_path,
                500 if failed else seen["status"],
                started,
            )

        try:
            body = self.app(environ, start_and_watch)
        except Exception:
            finish(failed=True)
            raise
        return _ObservedBody(body, finish)

    def _tenant_from_header(self, environ: Environ) -> str | None:
        value = environ.get(self._environ_key)
        return _text(value) if value else None


class _ObservedBody:
    """The app's response iterable, reporting once when the server closes it."""

    def __init__(self, body: Iterable[bytes], finish: Callable[[bool], None]) -> None:
        self._body = body
        self._finish: Callable[[bool], None] | None = finish
        self._failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except Exception:
            self._failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            finish, self._finish = self._finish, None
            if finish is not None:
                finish(self._failed)


def _flask_template(environ: Environ) -> str | None:
    request = environ.get("werkzeug.request")
    rule = getattr(getattr(request, "url_rule", None), "rule", None)
    if not isinstance(rule, str):
        return None
    return _text(environ.get("SCRIPT_NAME", "")) + _RULE_VARIABLE.sub(r"{\1}", rule)


def _text(wsgi_string: str) -> str:
    """PEP 3333 carries raw bytes as latin-1 strings; paths are UTF-8."""
    try:
        return wsgi_string.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return wsgi_string
