"""Wake-ups by ``LISTEN``: one connection per store turns notifications into ``wake()`` calls.

Transactions that make a run claimable send ``NOTIFY surefoot_runs`` (see ``base``),
and a worker that ends a run sends ``NOTIFY surefoot_finished`` for the clients waiting
for results. A :class:`Listener` holds one dedicated connection (autocommit, outside the
pool) that listens on one channel, in a daemon thread started by the first subscriber
and stopped when the last one leaves. Every batch of notifications calls each
subscriber's ``wake()`` once; the worker's claim loop then looks for work. The
notifications of the store's own connections are told of by the store as their
transactions commit (:meth:`Listener.wake`), sooner than the server would, and ignored
when the server's word of them comes: a worker in the process that started a run is
woken once for it, not twice (a second, empty claim).

The thread outlives any error: a lost connection, a server restart or failover,
``pg_terminate_backend``. It backs off with jitter (0.1 s doubling to 5 s),
reconnects, listens again and then wakes every subscriber once, because
notifications sent while it was away are lost for good. Polling remains the
worker's safety net; the listener only makes it prompt.

Stopping is prompt: the thread waits on its connection's socket and on a wake-up
socket of its own, so the last ``unsubscribe`` (or the store's ``close``) ends the
wait at once, closes the connection and joins the thread (bounded).
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import threading
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from surefoot.errors import StoreError
from surefoot.store.postgres.base import NOTIFY_CHANNEL

log = logging.getLogger("surefoot.store")

MIN_BACKOFF_S = 0.1  # reconnects wait a random time between half the bound and the bound,
MAX_BACKOFF_S = 5.0  # a bound that starts at twice the minimum and doubles up to the maximum
JOIN_TIMEOUT_S = 2.0  # how long stopping waits for the thread to close its connection

Wake = Callable[[], None]


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    """The listener's own connection: autocommit, so ``LISTEN`` takes effect at once."""
    return psycopg.connect(conninfo, autocommit=True)


@dataclass
class _Session:
    """One run of the listener thread: its stop flag and the socket that interrupts it."""

    stopping: threading.Event = field(default_factory=threading.Event)
    interrupt: tuple[socket.socket, socket.socket] = field(default_factory=socket.socketpair)
    thread: threading.Thread | None = None

    def halt(self) -> None:
        self.stopping.set()
        with suppress(OSError):  # the thread has already closed it on its way out
            self.interrupt[1].send(b"\0")

    def close_sockets(self) -> None:
        for end in self.interrupt:
            end.close()


class Listener:
    """Fans ``NOTIFY`` on one channel out to subscribers, over one reconnecting connection."""

    def __init__(
        self,
        conninfo: str,
        safe_url: str,
        *,
        channel: str = NOTIFY_CHANNEL,
        own: Callable[[int], bool] = lambda _pid: False,
    ) -> None:
        """``own`` tells whether a server process is one of this process's, whose
        notifications its store has already told of (:meth:`wake`): they are ignored."""
        self._conninfo = conninfo
        self._own = own
        self._safe_url = safe_url
        self._password = str(conninfo_to_dict(conninfo).get("password") or "")
        self._statement = sql.SQL("LISTEN {}").format(sql.Identifier(channel))
        self._lock = threading.Lock()
        self._subscribers: dict[object, Wake] = {}
        self._session: _Session | None = None
        self._closed = False

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        """Call ``wake`` on every notification; returns the function that unsubscribes."""
        token = object()
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._safe_url}: the store is closed")
            self._subscribers[token] = wake
            if self._session is None:
                session = _Session()
                session.thread = threading.Thread(
                    target=self._listen, args=(session,), name="surefoot-listen", daemon=True
                )
                self._session = session
                session.thread.start()

        def unsubscribe() -> None:
            self._unsubscribe(token)

        return unsubscribe

    def close(self) -> None:
        """Drop every subscriber and stop the thread; later subscriptions are refused."""
        with self._lock:
            self._closed = True
            self._subscribers.clear()
            session, self._session = self._session, None
        self._stop(session)

    def _unsubscribe(self, token: object) -> None:
        with self._lock:
            if self._subscribers.pop(token, None) is None or self._subscribers:
                return
            session, self._session = self._session, None
        self._stop(session)

    def _stop(self, session: _Session | None) -> None:
        if session is None or session.thread is None:
            return
        session.halt()
        if session.thread is threading.current_thread():
            return  # a subscriber unsubscribed from inside wake(): the loop ends on return
        session.thread.join(JOIN_TIMEOUT_S)
        if session.thread.is_alive():
            log.warning(
                "the listener on %s did not stop within %gs; it closes its connection "
                "as soon as its current attempt to connect ends",
                self._safe_url,
                JOIN_TIMEOUT_S,
            )

    # -- the thread ---------------------------------------------------------------------------
    def _listen(self, session: _Session) -> None:
        bound = 2 * MIN_BACKOFF_S
        failures = 0
        try:
            while not session.stopping.is_set():
                try:
                    with closing(_connect(self._conninfo)) as conn:
                        conn.execute(self._statement)
                        if failures:
                            log.info("listening on %s again", self._safe_url)
                        bound, failures = 2 * MIN_BACKOFF_S, 0
                        # Anything announced before LISTEN took effect was not heard: look once.
                        self.wake()
                        self._receive(conn, session)
                except Exception as exc:  # noqa: BLE001 - the listener outlives every error
                    failures += 1
                    self._report(exc, failures)
                    session.stopping.wait(random.uniform(bound / 2, bound))  # noqa: S311 - jitter
                    bound = min(bound * 2, MAX_BACKOFF_S)
        finally:
            session.close_sockets()

    def _receive(self, conn: psycopg.Connection[Any], session: _Session) -> None:
        """Wake subscribers per batch of notifications until stopped; raises if the
        connection is lost."""
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(session.interrupt[0], selectors.EVENT_READ)
            while not session.stopping.is_set():
                # timeout=0: read what has arrived, never block; the selector does the waiting.
                # This process's own notifications were told of as they committed.
                senders = {notify.pid for notify in conn.notifies(timeout=0)}
                if any(not self._own(pid) for pid in senders):
                    self.wake()
                selector.select()

    def wake(self) -> None:
        """Wake every subscriber now: on each batch of notifications from elsewhere, and
        when this process committed one on the channel (the server's word of it is ignored
        when it comes)."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        for wake in subscribers:
            try:
                wake()
            except Exception:
                log.exception("a wake-up subscriber of %s failed", self._safe_url)

    def _report(self, exc: Exception, failures: int) -> None:
        text = str(exc)
        if self._password:
            text = text.replace(self._password, "***")
        if failures == 1:
            log.warning(
                "the listener on %s has no connection, reconnecting: %s",
                self._safe_url,
                text,
                exc_info=None if isinstance(exc, psycopg.Error) else exc,
            )
        else:
            log.debug("the listener on %s is still reconnecting: %s", self._safe_url, text)
