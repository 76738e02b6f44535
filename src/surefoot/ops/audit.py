"""The audit log: read it, verify its hash chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from surefoot.domain.audit import AuditEntry, ChainProblem, verify_chain
from surefoot.engine.app import App
from surefoot.errors import AuditError

PAGE = 1000


def entries(app: App, *, entity_id: str | None = None, page: int = PAGE) -> Iterator[AuditEntry]:
    after = 0
    while True:
        batch = app.store.audit_entries(after_seq=after, limit=page, entity_id=entity_id)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].seq


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``surefoot audit head``."""
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise AuditError(f"expected SEQ:HASH (a number, a colon, 64 hex digits), got {text!r}")
    return int(seq), digest.lower()


def verify(
    app: App,
    *,
    progress: Callable[[int], None] | None = None,
    expect: tuple[int, str] | None = None,
) -> list[ChainProblem]:
    """Every problem in the chain (modified, deleted, reordered or truncated entries).

    ``expect`` is a head recorded earlier and kept off this machine: the chain must
    still hold that entry with that hash, which catches a rewrite of entries *and*
    of the stored head together.
    """
    head = app.store.audit_head()
    anchored: list[ChainProblem] = []
    if expect is not None:
        seq, digest = expect
        found = app.store.audit_entries(after_seq=seq - 1, limit=1)
        if not found or found[0].seq != seq:
            anchored.append(ChainProblem(seq, "the anchored entry is missing: entries removed"))
        elif found[0].hash != digest:
            anchored.append(ChainProblem(seq, "the anchored entry's hash differs: rewritten"))

    def counted() -> Iterator[AuditEntry]:
        for count, entry in enumerate(entries(app), start=1):
            if progress is not None and count % PAGE == 0:
                progress(count)
            yield entry

    return anchored + verify_chain(
        counted(), head_seq=head[0] if head else None, head_hash=head[1] if head else None
    )
