"""The audit log: read it in pages, read its head, verify its hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from surefoot.domain.access import Permission as Perm
from surefoot.ops import audit as audit_ops
from surefoot.ops import routes
from surefoot.web.api.common import ApiRoute, Limit, Surefoot, requires
from surefoot.web.api.fields import Strict
from surefoot.web.api.models import AuditItem, AuditPage, ChainReport

router = APIRouter(tags=["audit"], route_class=ApiRoute)


class Head(Strict):
    seq: int
    hash: str | None


@router.get("/audit", response_model=AuditPage, **requires(Perm.READ))
def list_audit(
    app: Surefoot,
    limit: Limit = 200,
    after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    entity_id: str | None = None,
) -> AuditPage:
    """Entries after ``after_seq``, oldest first; ``entity_id`` narrows to one run (or
    user, token, queue...)."""
    found = app.store.audit_entries(after_seq=after_seq, limit=limit, entity_id=entity_id)
    return AuditPage(
        items=[AuditItem.of(e) for e in found],
        next_after_seq=found[-1].seq if len(found) == limit else None,
    )


@router.get("/audit/head", response_model=Head, **requires(Perm.READ))
def head(app: Surefoot) -> Head:
    """The chain head; keep copies off this machine and pass one to verify as ``expect``."""
    found = app.store.audit_head()
    return Head(seq=found[0], hash=found[1]) if found else Head(seq=0, hash=None)


@router.get("/audit/verify", response_model=ChainReport, **requires(Perm.READ))
def verify(
    app: Surefoot,
    expect: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,18}:[0-9a-fA-F]{64}$", description="SEQ:HASH from an earlier head."
        ),
    ] = None,
) -> ChainReport:
    """Check the whole chain: modified, deleted, reordered or truncated entries."""
    anchor = audit_ops.parse_anchor(expect) if expect else None
    problems = audit_ops.verify(app, expect=anchor)
    found = app.store.audit_head()
    return ChainReport(
        intact=not problems,
        head_seq=found[0] if found else 0,
        head_hash=found[1] if found else None,
        problems=[{"seq": p.seq, "problem": p.problem} for p in problems],
    )


@router.get("/routes", **requires(Perm.READ))
def route_table(app: Surefoot) -> dict[str, list[dict[str, object]]]:
    """Routes per failure class (defaults and overrides) and classifier rules in order."""
    return {
        "routes": [
            {
                "scope": r.scope,
                "failure_class": r.failure_class.value,
                "route": r.route.value,
                "source": r.source,
            }
            for r in routes.route_table(app)
        ],
        "rules": [
            {"scope": r.scope, "order": r.order, "rule": r.rule, "failure_class": r.failure_class}
            for r in routes.rule_table(app)
        ],
    }
