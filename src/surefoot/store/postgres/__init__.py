"""The shared store: PostgreSQL, for many workers on many hosts.

Modules, from the bottom up: ``base`` (pool, transactions and retry, schema, audit
chain), ``intake`` (new runs, events, lookups), ``leases`` (claims, heartbeats),
``execution`` (fenced writes of a running execution), ``failures`` (compensation,
circuit breakers), ``operators`` (dead-letter, reviews, cancel, fork, queues, audit),
``access`` (users, API tokens, console sessions), ``stats`` (counts for metrics, alerts
and readiness; alert events), and beside them ``connection`` (pooled connections whose
transactions begin with their first statement) and ``listen`` (wake-ups by ``LISTEN``,
on a connection of their own).
"""

from __future__ import annotations

from collections.abc import Callable

from surefoot.errors import StoreError
from surefoot.store.postgres.access import AccessMixin
from surefoot.store.postgres.base import FINISHED_CHANNEL, NOTIFY_CHANNEL
from surefoot.store.postgres.listen import Listener
from surefoot.store.postgres.operators import OperatorMixin
from surefoot.store.postgres.stats import StatsMixin


class PostgresStore(OperatorMixin, AccessMixin, StatsMixin):
    """A :class:`~surefoot.store.base.Store` over one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        create: bool = True,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self._listener: Listener | None = None  # set once the database is known to be usable
        self._finished: Listener | None = None
        super().__init__(
            url, auto_migrate=auto_migrate, create=create, min_size=min_size, max_size=max_size
        )
        self._listener = Listener(self._conninfo, self.safe_url, own=self.is_own_backend)
        self._finished = Listener(
            self._conninfo, self.safe_url, channel=FINISHED_CHANNEL, own=self.is_own_backend
        )

    def subscribe(
        self,
        wake: Callable[[], None],
        *,
        waiting: Callable[[], bool] | None = None,  # noqa: ARG002 - the server tells
    ) -> Callable[[], None]:
        """Call ``wake`` whenever a run becomes claimable, from a listener thread that all
        subscribers of this store share; returns the function that unsubscribes. The
        server tells of each such commit, so ``waiting`` changes nothing here."""
        if self._listener is None:
            raise StoreError(f"{self.safe_url}: the store is not open")
        return self._listener.subscribe(wake)

    def subscribe_changes(
        self,
        wake: Callable[[], None],
        *,
        waiting: Callable[[], bool] | None = None,  # noqa: ARG002 - the server tells
    ) -> Callable[[], None] | None:
        """Call ``wake`` whenever a worker ends a run (``NOTIFY surefoot_finished``), from
        a listener thread of its own. Other changes are not told: callers keep polling,
        at a slower pace, for them. ``waiting`` changes nothing here."""
        if self._finished is None:
            raise StoreError(f"{self.safe_url}: the store is not open")
        return self._finished.subscribe(wake)

    def _notified(self, channels: set[str]) -> None:
        if NOTIFY_CHANNEL in channels and self._listener is not None:
            self._listener.wake()
        if FINISHED_CHANNEL in channels and self._finished is not None:
            self._finished.wake()

    def close(self) -> None:
        for listener in (self._listener, self._finished):
            if listener is not None:
                listener.close()
        super().close()


__all__ = ["PostgresStore"]
