"""Store contract for access: users, API tokens and console sessions, on every store (and
the run filter the API adds: by failure class).

Secrets never reach the store's audit log; every change to a user or a token is audited;
a session can be replaced atomically (rotation) and ends with its user's changes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from surefoot.domain.access import ApiTokenRecord, Role, WebSessionRecord
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import AttemptResult, DeadLetter, RunFilter
from surefoot.domain.status import AttemptKind, AttemptOutcome, DeadLetterStatus, RunStatus
from surefoot.errors import TokenNotFoundError, UserExistsError, UserNotFoundError
from surefoot.store.base import RunEnd, Store
from tests.contract.support import (
    ACTOR,
    T0,
    assert_chain_intact,
    at,
    attempt,
    claim_one,
    new_run,
)

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$not-a-real-hash-but-secret-looking"


def token(token_id: str = "t1", **changes: object) -> ApiTokenRecord:
    base = ApiTokenRecord(
        token_id=token_id,
        token_hash=f"hash-of-{token_id}",
        name=f"bot-{token_id}",
        role=Role.OPERATOR,
        created_by=ACTOR,
        created_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def session(session_hash: str = "s1", username: str = "ann") -> WebSessionRecord:
    return WebSessionRecord(
        session_hash=session_hash,
        username=username,
        role=Role.VIEWER,
        csrf_token=f"csrf-{session_hash}",
        created_at=T0,
        last_seen_at=T0,
        expires_at=at(3600),
    )


def audit_text(store: Store) -> str:
    return json.dumps(
        [
            [e.action, e.entity, e.entity_id, e.before, e.after, e.reason]
            for e in store.audit_entries(after_seq=0, limit=10_000)
        ]
    )


def test_users_round_trip_and_every_change_is_audited_without_the_hash(store: Store):
    created = store.create_user("ann", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    assert (created.username, created.role, created.disabled) == ("ann", Role.VIEWER, False)
    assert store.get_user("ann") == created
    assert store.get_user("nobody") is None

    store.update_user("ann", role=Role.ADMIN, actor=ACTOR, now=at(1))
    store.update_user("ann", disabled=True, actor=ACTOR, now=at(2))
    store.update_user("ann", password_hash=HASH + "2", actor=ACTOR, now=at(3))
    found = store.get_user("ann")
    assert found is not None
    assert (found.role, found.disabled, found.password_hash) == (Role.ADMIN, True, HASH + "2")
    assert found.created_at == T0
    assert found.updated_at == at(3)
    assert [u.username for u in store.list_users()] == ["ann"]

    actions = [e.action for e in store.audit_entries(after_seq=0, limit=100)]
    assert actions == ["user.created", "user.updated", "user.updated", "user.password_changed"]
    assert "argon2" not in audit_text(store)
    assert assert_chain_intact(store) == 4


def test_a_taken_user_name_and_an_unknown_user_are_refused(store: Store):
    store.create_user("ann", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    with pytest.raises(UserExistsError):
        store.create_user("ann", None, Role.ADMIN, actor=ACTOR, now=T0)
    with pytest.raises(UserNotFoundError):
        store.update_user("bob", role=Role.ADMIN, actor=ACTOR, now=T0)
    only = store.get_user("ann")
    assert only is not None
    assert only.role is Role.VIEWER
    assert assert_chain_intact(store) == 1


def test_tokens_are_found_by_hash_revoked_once_and_audited_without_hashes(store: Store):
    store.create_token(token("t1", expires_at=at(60)), now=T0)
    store.create_token(token("t2"), now=T0)
    found = store.find_token("hash-of-t1")
    assert found is not None
    assert found.token_id == "t1"
    assert found.expires_at == at(60)
    assert found.usable(at(59))
    assert not found.usable(at(60))
    assert store.find_token("hash-of-nothing") is None

    store.touch_token("t1", at(5))
    touched = store.find_token("hash-of-t1")
    assert touched is not None
    assert touched.last_used_at == at(5)

    revoked = store.revoke_token("t2", actor=ACTOR, now=at(10))
    assert revoked.revoked_at == at(10)
    assert not revoked.usable(at(10))
    again = store.revoke_token("t2", actor=ACTOR, now=at(20))
    assert again.revoked_at == at(10)
    with pytest.raises(TokenNotFoundError):
        store.revoke_token("t3", actor=ACTOR, now=at(20))
    assert [t.token_id for t in store.list_tokens()] == ["t1", "t2"]

    actions = [e.action for e in store.audit_entries(after_seq=0, limit=100)]
    assert actions == ["token.created", "token.created", "token.revoked"]
    assert "hash-of" not in audit_text(store)
    assert_chain_intact(store)


def test_has_credentials_needs_an_enabled_user_or_a_usable_token(store: Store):
    assert not store.has_credentials(T0)
    store.create_token(token("t1", expires_at=at(60)), now=T0)
    assert store.has_credentials(at(59))
    assert not store.has_credentials(at(61))
    store.create_user("ann", HASH, Role.ADMIN, actor=ACTOR, now=T0)
    assert store.has_credentials(at(61))
    store.update_user("ann", disabled=True, actor=ACTOR, now=at(62))
    assert not store.has_credentials(at(63))


def test_a_user_without_a_password_is_no_credential_without_oidc(store: Store):
    store.create_user("sso-only", None, Role.ADMIN, actor=ACTOR, now=T0)
    assert not store.has_credentials(at(1))


def test_a_session_replaced_on_sign_in_is_gone_and_the_new_one_is_stored(store: Store):
    store.create_user("ann", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    store.create_session(session("old"))
    store.create_session(session("new"), replaces="old")
    assert store.get_session("old") is None
    assert store.get_session("new") == session("new")

    store.touch_session("new", at(30))
    touched = store.get_session("new")
    assert touched is not None
    assert touched.last_seen_at == at(30)
    store.delete_session("new")
    assert store.get_session("new") is None


def test_changing_or_disabling_a_user_ends_their_sessions_only(store: Store):
    store.create_user("ann", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    store.create_user("bob", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    store.create_session(session("ann-1", "ann"))
    store.create_session(session("bob-1", "bob"))
    store.update_user("ann", disabled=True, actor=ACTOR, now=at(1))
    assert store.get_session("ann-1") is None
    assert store.get_session("bob-1") is not None


def test_sessions_past_their_absolute_limit_are_swept_at_the_next_sign_in(store: Store):
    store.create_user("ann", HASH, Role.VIEWER, actor=ACTOR, now=T0)
    store.create_session(session("stale"))
    later = replace(session("fresh"), created_at=at(4000), last_seen_at=at(4000))
    store.create_session(replace(later, expires_at=at(4000) + timedelta(hours=1)))
    assert store.get_session("stale") is None
    assert store.get_session("fresh") is not None


def test_runs_filter_by_failure_class_of_dead_letter_or_latest_failed_attempt(store: Store):
    """The API's ``failure_class`` run filter (SQL on both stores): a run matches when its
    dead-letter entry, or its latest failed attempt, has the class."""
    dead, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.finish_run(
        lease,
        RunEnd(
            RunStatus.FAILED,
            dead_letter=DeadLetter(
                run_id=dead.run_id,
                generation=0,
                workflow="flow",
                failure_class=FailureClass.PERMANENT,
                reason="declined",
                attempts=1,
                status=DeadLetterStatus.OPEN,
                dead_lettered_at=at(1),
            ),
        ),
        at(1),
    )
    retrying, _ = store.create_run(new_run(), at(2), ACTOR)
    lease = claim_one(store, "w1", at(2)).lease
    for number, failure_class in ((1, FailureClass.DATA), (2, FailureClass.TRANSIENT)):
        store.begin_attempt(lease, attempt(lease, at(2 + number), number=number))
        store.finish_attempt(
            lease,
            position=1,
            kind=AttemptKind.STEP,
            attempt=number,
            result=AttemptResult(AttemptOutcome.FAILED, failure_class=failure_class),
            journal=None,
            now=at(2 + number),
        )
    store.create_run(new_run(), at(9), ACTOR)

    def matching(failure_class: FailureClass) -> list[str]:
        found = store.list_runs(RunFilter(failure_class=failure_class))
        assert store.count_runs(RunFilter(failure_class=failure_class)) == len(found)
        return [r.run_id for r in found]

    assert matching(FailureClass.PERMANENT) == [dead.run_id]
    assert matching(FailureClass.TRANSIENT) == [retrying.run_id]  # its latest failure
    assert matching(FailureClass.DATA) == []
    assert matching(FailureClass.AMBIGUOUS) == []
