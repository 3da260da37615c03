"""Backup signatures (signing.py): what verifies, and every change that must not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.backup import signing

KEY = bytes(range(32))
CHECKSUMS = b'{"format":"kubeplane.dev/backup-checksums/v1","archive":{"sha256":"ab","size":3}}'


def metadata(name: str = "nightly") -> dict[str, Any]:
    return {"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "kubeplane-system", "uid": "u-1"},
            "spec": {"includedNamespaces": ["shop"]},
            "status": {"phase": "Completed", "errors": 0, "progress": {"totalItems": 3, "itemsBackedUp": 3}}}


def sha(checksums: bytes) -> bytes:
    return hashlib.sha256(checksums).digest()


def signed(name: str = "nightly", key: bytes = KEY, checksums: bytes = CHECKSUMS) -> dict[str, Any]:
    body = metadata(name)
    body["signature"] = signing.sign(key, name, body, sha(checksums))
    return body


def test_a_signed_backup_verifies_after_a_round_trip_through_json() -> None:
    stored = json.loads(json.dumps(signed(), indent=1))
    signing.verify(KEY, "nightly", stored, sha(CHECKSUMS))
    assert stored["signature"]["keyId"] == signing.key_id(KEY) and len(stored["signature"]["hmac"]) == 64


def test_the_key_never_appears_in_the_signature() -> None:
    text = json.dumps(signed())
    assert KEY.hex() not in text and signing.key_id(KEY) != KEY.hex()[:16]


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("signature"), "is not signed"),
    (lambda m: m["signature"].update(format="v0"), "is not signed"),
    (lambda m: m["status"].update(phase="PartiallyFailed"), "does not match its signature"),
    (lambda m: m["spec"].update(includedNamespaces=["kube-system"]), "does not match its signature"),
    (lambda m: m["metadata"].update(uid="u-2"), "does not match its signature"),
    (lambda m: m.update(extra=True), "does not match its signature"),
    (lambda m: m["signature"].update(hmac="0" * 64), "does not match its signature"),
    (lambda m: m["signature"].update(keyId="0" * 16), "signed with another key"),
])
def test_any_change_to_the_metadata_object_is_refused(change: Any, message: str) -> None:
    stored = signed()
    change(stored)
    with pytest.raises(signing.SignatureError, match=message):
        signing.verify(KEY, "nightly", stored, sha(CHECKSUMS))


def test_other_checksums_another_name_or_another_key_are_refused() -> None:
    stored = signed()
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(KEY, "nightly", stored, sha(CHECKSUMS + b" "))
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(KEY, "nightly-copy", stored, sha(CHECKSUMS))  # a signed backup copied under another name
    with pytest.raises(signing.SignatureError, match="signed with another key"):
        signing.verify(bytes(32), "nightly", stored, sha(CHECKSUMS))


def test_the_secret_name_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert signing.secret_name() == signing.DEFAULT_SECRET
    monkeypatch.setenv(signing.SECRET_ENV, "shared-signing-key")
    assert signing.secret_name() == "shared-signing-key"


@given(st.binary(min_size=1, max_size=256), st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_a_single_flipped_bit_in_the_checksums_object_is_refused(checksums: bytes, at: int, bit: int) -> None:
    stored = signed(checksums=checksums)
    flipped = bytearray(checksums)
    flipped[at % len(flipped)] ^= 1 << bit
    with pytest.raises(signing.SignatureError):
        signing.verify(KEY, "nightly", stored, sha(bytes(flipped)))
