"""Delivering notifications: HTTP endpoints in the background, in-process inboxes at once.

An endpoint ``uri`` of a subscription is either

- ``http://...`` / ``https://...``: the notification is POSTed by a background thread
  (httpx, short timeout), so a slow or dead endpoint never delays a write; or
- ``sscity:inbox/<name>``: the notification is kept in memory in the inbox ``<name>`` of the
  subscription's tenant (the newest :data:`INBOX_SIZE`; another tenant's inbox of the same
  name is a different one, as its entities are), readable with ``Client.notifications(name)`` or
  ``GET /sscity/inbox/<name>``. Notebooks test subscriptions this way without a web server.
  Inboxes live in the broker's process and are not persisted. Other brokers (Orion-LD)
  do not know this scheme.

Each delivery updates the subscription's ``timesSent``, ``lastNotification``,
``lastSuccess`` / ``lastFailure`` and ``status``, kept in memory by this process.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time

from .storage import dumps
from .timeutil import now_iso

INBOX_SCHEME = "sscity:inbox/"
INBOX_SIZE = 1000
_log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications and keeps inboxes and delivery statistics.

    Parameters
    ----------
    timeout_s : float
        Time limit of one HTTP delivery.
    queue_size : int
        Pending HTTP deliveries beyond this are dropped (and counted as failures).
    """

    def __init__(self, timeout_s: float = 2.0, queue_size: int = 10_000):
        self.timeout_s = timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._inboxes: dict[tuple[str, str], collections.deque] = {}  # (tenant, name)
        self._stats: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    # -- delivery ---------------------------------------------------------------------

    def deliver(self, subscription_id: str, endpoint: dict, notification: dict, link: str | None,
                tenant: str) -> None:
        """Send ``notification`` to the subscription's endpoint (inbox now, HTTP in background)."""
        uri = endpoint["uri"]
        if uri.startswith(INBOX_SCHEME):
            name = uri[len(INBOX_SCHEME):]
            with self._lock:  # each tenant's inboxes are its own, like its entities
                box = self._inboxes.setdefault((tenant or "", name), collections.deque(maxlen=INBOX_SIZE))
                box.append(notification)
            self._record(subscription_id, ok=True)
            return
        headers = {"Content-Type": "application/json"}
        accept = endpoint.get("accept", "application/json")
        if accept == "application/ld+json":
            headers["Content-Type"] = "application/ld+json"
        elif link:
            headers["Link"] = link
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        body = dumps(notification).encode("utf-8")
        self._start_worker()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait((subscription_id, uri, body, headers))
        except queue.Full:
            with self._lock:
                self._pending -= 1
            self._record(subscription_id, ok=False)
            _log.warning("notification queue full: dropped a notification of %s", subscription_id)

    def _start_worker(self) -> None:
        if self._worker is not None:
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="sscity-notifier", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as http:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                subscription_id, uri, body, headers = item
                try:
                    response = http.post(uri, content=body, headers=headers)
                    ok = response.status_code < 400
                except Exception as err:  # any network failure counts as a failed delivery
                    _log.info("notification to %s failed: %s", uri, err)
                    ok = False
                self._record(subscription_id, ok=ok)
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _record(self, subscription_id: str, ok: bool) -> None:
        now = now_iso()
        with self._lock:
            stats = self._stats.setdefault(subscription_id, {"timesSent": 0, "timesFailed": 0})
            stats["timesSent"] += 1
            stats["lastNotification"] = now
            if ok:
                stats["lastSuccess"] = now
                stats["status"] = "ok"
            else:
                stats["timesFailed"] += 1
                stats["lastFailure"] = now
                stats["status"] = "failed"

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued HTTP delivery was attempted; False on time-out."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- inboxes and statistics ---------------------------------------------------------

    def inbox(self, name: str, tenant: str = "") -> list[dict]:
        """Notifications received by the inbox ``name`` of ``tenant``, oldest first."""
        with self._lock:
            return list(self._inboxes.get((tenant or "", name), ()))

    def clear_inbox(self, name: str, tenant: str = "") -> int:
        """Empty the inbox ``name`` of ``tenant``; returns how many notifications it held."""
        with self._lock:
            box = self._inboxes.pop((tenant or "", name), None)
        return len(box) if box else 0

    def stats(self, subscription_id: str) -> dict:
        """Delivery statistics of a subscription (empty before its first notification)."""
        with self._lock:
            return dict(self._stats.get(subscription_id, {}))

    def forget(self, subscription_id: str) -> None:
        """Drop the statistics of a deleted subscription."""
        with self._lock:
            self._stats.pop(subscription_id, None)

    def close(self) -> None:
        """Stop the background sender after the deliveries already queued."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=self.timeout_s + 1)
            self._worker = None
