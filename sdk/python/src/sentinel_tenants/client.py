"""The in-process event pipe: a bounded queue the app appends to, one daemon thread shipping it.

Owns batching, retry with capped backoff, drop-oldest when full, flush/close, and the counters.
"""

from __future__ import annotations

import atexit
import collections
import datetime
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from .transport import Outcome, Transport

logger = logging.getLogger("sentinel_tenants")

DEFAULT_URL = "http://127.0.0.1:9137/v1/events"

Timestamp = Union[None, float, int, str, datetime.datetime]

# A batch that keeps failing is held aside at most this long, then dropped so that newer
# events get their turn: the detector's windows are minutes long, older events count for little.
MAX_RETRY_SECONDS = 60.0
FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 30.0
# One warning of each kind per this many seconds, so a dead sentineld cannot flood the app's logs.
WARNING_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Stats:
    """Counters since the client was made (a snapshot)."""

    recorded: int  # events queued by record()
    sent: int  # events the server accepted
    dropped: int  # events thrown away here: queue full, retries exhausted, or recorded after close
    rejected: int  # events the server refused (per-event errors, or 400/401/413 for a batch)
    retries: int  # POSTs repeated after 429/5xx/connection errors
    errors: int  # exceptions inside the SDK (or a tenant callable) that were swallowed
    queued: int  # events waiting now


class SentinelClient:
    """Collects request events and sends them to sentineld in the background.

    `record` never blocks on the network and never raises; memory is bounded by `max_queue`
    events plus one batch in flight. When the queue is full, the oldest queued event is dropped.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10000,
        timeout: float = 2.0,
        gzip: bool = True,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("batch_size, max_queue, flush_interval and timeout must be positive")
        self._transport = Transport(url, token, timeout, gzip)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._warned_at: dict[str, float] = {}
        self._reset_state()
        atexit.register(self.close)
        _forget_in_forked_children(self)

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._flush_requested = False
        # Events are numbered in record order: the queue holds [_taken, _recorded) and the batch
        # in flight starts at _in_flight_from, so "everything before N is settled" is O(1).
        self._recorded = 0
        self._taken = 0
        self._in_flight_from: int | None = None
        self._sent = self._dropped = self._rejected = self._retries = self._errors = 0
        self._overflowed = self._overflow_reported = 0

    def record(
        self,
        tenant_id: str,
        endpoint: str,
        status_code: int,
        latency_ms: float,
        timestamp: Timestamp = None,
        dims: Mapping[str, object] | None = None,
    ) -> None:
        """Queue one event. `timestamp`: epoch seconds, datetime or RFC 3339 string; default now.

        `dims`: the event's dimensions (`{"region": "eu-west", "version": "2.3.1"}`), values as
        text, for `sentinelctl tenants explain`; sentineld keeps those named in
        `[tenants] dimensions` and ignores the rest.
        """
        try:
            event: dict[str, Any] = {
                "tenant_id": str(tenant_id),
                "endpoint": _at_most_256_bytes(str(endpoint)),
                "status_code": int(status_code),
                "latency_ms": float(latency_ms),
                "timestamp": _epoch_millis(timestamp),
            }
            if dims:
                event["dims"] = {str(name): str(value) for name, value in dims.items()}
        except Exception:
            self._count_error()
            return
        with self._lock:
            if self._closed:
                self._dropped += 1
                self._overflowed += 1
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self._taken += 1
                self._dropped += 1
                self._overflowed += 1
            self._queue.append(event)
            self._recorded += 1
            if self._thread is None:
                self._start_worker()
            full = len(self._queue) >= self._batch_size
        if full and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Send all recorded so far now; True once all of it was sent, rejected or dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._recorded
            self._flush_requested = True
        self._wake.set()
        with self._settled:
            while self._oldest_unsettled() < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush the queue (one try per batch) and stop the thread; later records are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._transport.close()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass

    @property
    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                recorded=self._recorded,
                sent=self._sent,
                dropped=self._dropped,
                rejected=self._rejected,
                retries=self._retries,
                errors=self._errors,
                queued=len(self._queue),
            )

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    def _oldest_unsettled(self) -> int:
        return self._taken if self._in_flight_from is None else self._in_flight_from

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sentinel-tenants", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_due = time.monotonic() + self._flush_interval
        while True:
            self._wake.wait(max(0.0, next_due - time.monotonic()))
            self._wake.clear()
            with self._lock:
                due = self._flush_requested or self._closed or time.monotonic() >= next_due
                self._flush_requested = False
            if due:
                next_due = time.monotonic() + self._flush_interval
            while True:
                batch = self._take(due)
                if not batch:
                    break
                try:
                    self._deliver(batch)
                except Exception:  # a bug of ours must not stop the thread for good
                    self._count_error()
                    self._settle(dropped=len(batch))
            self._report_overflow()
            if self._stop.is_set():
                return

    def _take(self, due: bool) -> list[dict[str, Any]]:
        with self._lock:
            if len(self._queue) < self._batch_size and not (due and self._queue):
                return []
            count = min(self._batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._in_flight_from = self._taken
            self._taken += count
            return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            outcome = self._transport.post(batch)
            if not outcome.retry:
                self._settle(sent=outcome.accepted, rejected=outcome.rejected)
                if outcome.problem:
                    self._warn("rejected", f"sentinel: {outcome.problem}; not retried")
                return
            if self._stop.is_set() or time.monotonic() - started >= MAX_RETRY_SECONDS:
                self._give_up(batch, outcome)
                return
            with self._lock:
                self._retries += 1
            logger.debug("sentinel: %s; retrying in %.1fs", outcome.problem, backoff)
            self._stop.wait(_delay(backoff, outcome))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _give_up(self, batch: list[dict[str, Any]], outcome: Outcome) -> None:
        """Closing, or retried too long: drop this batch, and when closing everything queued."""
        rest = 0
        with self._lock:
            if self._stop.is_set():
                rest = len(self._queue)
                self._queue.clear()
                self._taken += rest
        self._settle(dropped=len(batch) + rest)
        self._warn("gave-up", f"sentinel: {outcome.problem}; dropped {len(batch) + rest} event(s)")

    def _settle(self, sent: int = 0, rejected: int = 0, dropped: int = 0) -> None:
        with self._settled:
            self._sent += sent
            self._rejected += rejected
            self._dropped += dropped
            self._in_flight_from = None
            self._settled.notify_all()

    def _report_overflow(self) -> None:
        with self._lock:
            dropped = self._overflowed - self._overflow_reported
            self._overflow_reported = self._overflowed
        if dropped:
            self._warn("dropped", f"sentinel: dropped {dropped} event(s) (queue full or closed)")

    def _warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        last = self._warned_at.get(kind)
        if last is None or now - last >= WARNING_INTERVAL_SECONDS:
            self._warned_at[kind] = now
            logger.warning(message)


def _delay(backoff: float, outcome: Outcome) -> float:
    """Half the backoff plus jitter, so many app processes do not retry in lockstep."""
    delay = backoff / 2 + random.uniform(0, backoff / 2)
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def _at_most_256_bytes(endpoint: str) -> str:
    """The server refuses longer endpoints; a cut one still groups with its neighbours."""
    if len(endpoint) <= 64:  # 64 characters are at most 256 bytes of UTF-8
        return endpoint
    return endpoint.encode("utf-8")[:256].decode("utf-8", "ignore")


def _epoch_millis(timestamp: Timestamp) -> int | str:
    if timestamp is None:
        return int(time.time() * 1000)
    if isinstance(timestamp, str):
        return timestamp
    if isinstance(timestamp, datetime.datetime):
        return int(timestamp.timestamp() * 1000)
    return int(float(timestamp) * 1000)


def _forget_in_forked_children(client: SentinelClient) -> None:
    """A forked worker (gunicorn, multiprocessing) starts empty: the parent still owns its queue,
    its connection and its thread, which does not exist in the child."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(client)

    def after_fork() -> None:
        child = ref()
        if child is not None:
            child._reset_state()
            child._transport.close()  # closes only the child's copy of the socket

    os.register_at_fork(after_in_child=after_fork)
