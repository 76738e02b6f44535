"""Sealed cookies: what one server seals, another with the same secret opens; nothing else
opens, and the key derivation is the HKDF of RFC 5869."""

from __future__ import annotations

import pytest
from joserfc import jwe
from joserfc.jwk import OctKey

from surefoot.web.auth import sealed


@pytest.mark.parametrize(
    ("secret", "salt", "info", "length", "expected"),
    [
        (  # RFC 5869, test case 1
            bytes([0x0B]) * 22,
            bytes(range(13)),
            bytes(range(0xF0, 0xFA)),
            42,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (  # RFC 5869, test case 3: no salt, no info
            bytes([0x0B]) * 22,
            b"",
            b"",
            42,
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ],
)
def test_the_key_derivation_is_rfc_5869_hkdf_sha256(
    secret: bytes, salt: bytes, info: bytes, length: int, expected: str
):
    assert sealed.hkdf_sha256(secret, salt=salt, info=info, length=length).hex() == expected


def test_what_one_server_seals_another_with_the_same_secret_opens():
    payload = {"state": "s", "expires_at": 1_700_000_000, "next_path": "/runs?x=1"}
    value = sealed.seal(sealed.derive_key("shared secret", "purpose"), payload)
    assert "shared" not in value
    assert "/runs" not in value
    assert sealed.open_sealed(sealed.derive_key("shared secret", "purpose"), value) == payload


def test_another_secret_or_purpose_opens_nothing():
    value = sealed.seal(sealed.derive_key("shared secret", "purpose"), {"a": 1})
    assert sealed.open_sealed(sealed.derive_key("other secret", "purpose"), value) is None
    assert sealed.open_sealed(sealed.derive_key("shared secret", "other"), value) is None


@pytest.mark.parametrize("bad", ["", "x", "a.b.c.d.e", "....", "é.é.é.é.é"])
def test_garbage_opens_to_nothing(bad: str):
    assert sealed.open_sealed(sealed.derive_key("k", "p"), bad) is None


def test_only_direct_a256gcm_is_accepted():
    key = sealed.derive_key("k", "p")
    other_enc = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A128GCM"}, b'{"a":1}', OctKey.import_key(bytes(16))
    )
    assert sealed.open_sealed(key, other_enc) is None
    not_an_object = jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, b"[1]", key)
    assert sealed.open_sealed(key, not_an_object) is None
