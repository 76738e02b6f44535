"""The audit log, a page at a time, and the verification of its hash chain."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.ops import audit as audit_ops
from surefoot.web.console.pages import User, field, page_args, render, surefoot_app

router = APIRouter()


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, principal: User) -> Response:
    """Entries in seq order. Without ``after``, the newest page (the chain's tail)."""
    return _page(request, principal, verify=False)


@router.get("/audit/verify", response_class=HTMLResponse)
def audit_verify(request: Request, principal: User) -> Response:
    """Walk the whole chain and show what it found (reading only; anyone may)."""
    return _page(request, principal, verify=True)


def _page(request: Request, principal: User, *, verify: bool) -> Response:
    app = surefoot_app(request)
    limit, _offset = page_args(request)
    entity_id = field(request, "entity_id")
    head = app.store.audit_head()
    head_seq = head[0] if head else 0
    after = _int(field(request, "after"))
    if after is None:
        after = 0 if entity_id else max(0, head_seq - limit)
    entries = app.store.audit_entries(after_seq=after, limit=limit, entity_id=entity_id)
    problems = audit_ops.verify(app) if verify else None
    base = "&" + urlencode({"entity_id": entity_id}) if entity_id else ""
    older = max(0, after - limit)
    return render(
        request,
        principal,
        "audit.html",
        title="Audit log",
        entries=list(reversed(entries)),
        head=head,
        verified=verify,
        problems=problems,
        entity_id=entity_id or "",
        limit=limit,
        newer_link=(
            f"?after={entries[-1].seq}&limit={limit}{base}"
            if entries and entries[-1].seq < head_seq
            else ""
        ),
        older_link=f"?after={older}&limit={limit}{base}" if after > 0 and not entity_id else "",
        first_link=f"?after=0&limit={limit}{base}" if after > 0 else "",
    )
