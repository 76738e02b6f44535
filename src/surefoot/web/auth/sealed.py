"""Values a browser keeps for the server but can neither read nor change: sealed cookies.

``seal(key, payload)`` is a compact JWE of the payload's JSON (``alg`` ``dir``, ``enc``
``A256GCM``: authenticated encryption); ``open_sealed(key, value)`` gives the payload
back, or None for anything this key did not seal (altered, forged, truncated, or sealed
under another key). ``derive_key(secret, purpose)`` makes the 32-byte key with
HKDF-SHA256 (RFC 5869) from a secret every server has, so any server opens what another
sealed and no server has to remember anything. The JWE comes from joserfc, the library
that checks OIDC id_tokens.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

_HEADER = {"alg": "dir", "enc": "A256GCM"}
_ALGORITHMS = ["dir", "A256GCM"]  # nothing else is accepted, whatever the value's header says
_SALT = b"surefoot sealed cookie"


def hkdf_sha256(secret: bytes, *, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF with SHA-256 (RFC 5869), from the ``cryptography`` package."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(
        secret
    )


def derive_key(secret: str, purpose: str) -> OctKey:
    """The key for ``purpose`` (different purposes never share a key) from ``secret``."""
    raw = hkdf_sha256(secret.encode(), salt=_SALT, info=purpose.encode())
    return OctKey.import_key(raw)


def seal(key: OctKey, payload: dict[str, Any]) -> str:
    """``payload`` (JSON-serialisable) encrypted and authenticated under ``key``."""
    plaintext = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return jwe.encrypt_compact(_HEADER, plaintext, key)


def open_sealed(key: OctKey, value: str) -> dict[str, Any] | None:
    """The payload ``seal(key, ...)`` sealed in ``value``; None for anything else."""
    try:
        plaintext = jwe.decrypt_compact(value, key, algorithms=_ALGORITHMS).plaintext
        payload = json.loads(plaintext or b"")
    except (JoseError, ValueError):  # ValueError covers bad base64 and bad JSON
        return None
    return payload if isinstance(payload, dict) else None
