import base64
import io
import os
import re

import pytest

from operators.backup import crypto
from operators.backup.archive import ArchiveWriter, VerifiedArchive
from operators.backup.crypto import (
    HEADER_BYTES,
    TAG_BYTES,
    DecryptingWriter,
    DecryptionError,
    EncryptingWriter,
    IteratorReader,
    decrypt,
    decrypt_iter,
    encrypt,
    encrypt_iter,
)
from tests.unit.backup.objects import obj

KEY = bytes(range(32))
CHUNK = 1024
RECORD = CHUNK + TAG_BYTES


def records(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_BYTES:]
    return sealed[:HEADER_BYTES], [body[i : i + RECORD] for i in range(0, len(body), RECORD)]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_round_trip(size):
    data = os.urandom(size)
    sealed = encrypt(data, KEY, CHUNK)
    assert decrypt(sealed, KEY) == data
    assert size < 16 or data not in sealed
    chunks = -(-size // CHUNK) or 1
    assert len(sealed) == HEADER_BYTES + size + chunks * TAG_BYTES


def test_streams_in_and_out():
    data = os.urandom(10 * CHUNK + 3)
    sealed = b"".join(encrypt_iter(io.BytesIO(data), KEY, CHUNK))
    assert b"".join(decrypt_iter(io.BytesIO(sealed), KEY)) == data
    reader = IteratorReader(encrypt_iter(io.BytesIO(data), KEY, CHUNK))
    assert decrypt(reader.read(), KEY) == data


def test_writers():
    data = os.urandom(5 * CHUNK + 100)
    sealed = io.BytesIO()
    writer = EncryptingWriter(sealed, KEY, CHUNK)
    for i in range(0, len(data), 333):
        writer.write(data[i : i + 333])
    writer.close()
    plain = io.BytesIO()
    opener = DecryptingWriter(plain, KEY)
    ciphertext = sealed.getvalue()
    for i in range(0, len(ciphertext), 777):
        opener.write(ciphertext[i : i + 777])
    opener.close()
    assert plain.getvalue() == data


def test_abandoned_writer_never_seals_the_stream():
    for finish in ("abort", "drop"):
        sealed = io.BytesIO()
        writer = EncryptingWriter(sealed, KEY, CHUNK)
        writer.write(os.urandom(3 * CHUNK))
        if finish == "abort":
            writer.abort()
            writer.close()
        else:
            del writer
        with pytest.raises(DecryptionError):
            decrypt(sealed.getvalue(), KEY)


def test_same_plaintext_encrypts_differently_each_time():
    assert encrypt(b"secret", KEY) != encrypt(b"secret", KEY)


def test_archive_through_encryption():
    sealed = io.BytesIO()
    encrypting = EncryptingWriter(sealed, KEY, CHUNK)
    with ArchiveWriter(encrypting) as writer:  # type: ignore[arg-type]
        writer.add_item(obj("Secret", "creds", "a", data={"password": "aHVudGVyMg=="}), "secrets")
    manifest = writer.close()
    encrypting.close()
    assert b"aHVudGVyMg" not in sealed.getvalue()
    with VerifiedArchive(io.BytesIO(decrypt(sealed.getvalue(), KEY)), manifest) as backup:
        assert [i.name for i in backup.items()] == ["creds"]


# --- tampering ---------------------------------------------------------------------------------

DATA = os.urandom(4 * CHUNK + 10)
SEALED = encrypt(DATA, KEY, CHUNK)
HEADER, RECORDS = records(SEALED)


def flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x40
    return bytes(changed)


TAMPERED = {
    "flipped ciphertext byte": flip(SEALED, HEADER_BYTES + 10),
    "flipped tag byte": flip(SEALED, HEADER_BYTES + RECORD - 1),
    "flipped last byte": flip(SEALED, len(SEALED) - 1),
    "changed nonce prefix": flip(SEALED, HEADER_BYTES - 1),
    "changed chunk size": HEADER[:7] + (2048).to_bytes(4, "big") + HEADER[11:] + b"".join(RECORDS),
    "truncated at a chunk boundary": HEADER + b"".join(RECORDS[:-1]),
    "truncated to the header": HEADER,
    "truncated mid-chunk": SEALED[:-5],
    "chunk dropped": HEADER + RECORDS[0] + b"".join(RECORDS[2:]),
    "chunks swapped": HEADER + RECORDS[1] + RECORDS[0] + b"".join(RECORDS[2:]),
    "chunk duplicated": HEADER + RECORDS[0] + RECORDS[0] + b"".join(RECORDS[1:]),
    "data appended": SEALED + b"more",
    "final chunk repeated": SEALED + RECORDS[-1],
    "chunk from another object": HEADER + encrypt(DATA, KEY, CHUNK)[HEADER_BYTES : HEADER_BYTES + RECORD]
    + b"".join(RECORDS[1:]),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampering_is_detected(case):
    with pytest.raises(DecryptionError):
        decrypt(TAMPERED[case], KEY)
    sink = io.BytesIO()
    writer = DecryptingWriter(sink, KEY)
    with pytest.raises(DecryptionError):
        writer.write(TAMPERED[case])
        writer.close()


def test_wrong_key_empty_input_and_foreign_data():
    with pytest.raises(DecryptionError):
        decrypt(SEALED, bytes(32))
    with pytest.raises(DecryptionError, match="header"):
        decrypt(b"", KEY)
    with pytest.raises(DecryptionError, match="not encrypted"):
        decrypt(b"\x1f\x8b" + b"\0" * 100, KEY)
    assert crypto.is_encrypted(SEALED) and not crypto.is_encrypted(b"\x1f\x8b\x08")


def test_keys():
    raw = os.urandom(32)
    assert crypto.parse_key(raw) == raw
    assert crypto.parse_key(raw.hex()) == raw
    assert crypto.parse_key(base64.b64encode(raw).decode() + "\n") == raw
    # A 32-character passphrase is not taken as a key (reliability audit M6).
    for bad in (b"short", "z" * 64, base64.b64encode(os.urandom(16)), "correct horse battery staple!!!!"):
        with pytest.raises(ValueError):
            crypto.parse_key(bad)
    with pytest.raises(ValueError):
        encrypt(b"x", b"short key")
    with pytest.raises(ValueError):
        encrypt(b"x", KEY, chunk_size=10)
    assert len(crypto.generate_key()) == 32


# --- version 2: key id and context -------------------------------------------------------------------

def test_an_object_read_under_another_name_is_refused():
    sealed = encrypt(b"the checksums of backup a", KEY, CHUNK, context="backups/a/a-checksums.json")
    assert decrypt(sealed, KEY, "backups/a/a-checksums.json") == b"the checksums of backup a"
    with pytest.raises(DecryptionError, match=re.escape("as 'backups/a/a-checksums.json', read as 'backups/b/")):
        decrypt(sealed, KEY, "backups/b/b-checksums.json")
    with pytest.raises(DecryptionError, match="copied from another name"):
        b"".join(decrypt_iter(io.BytesIO(sealed), KEY, "backups/b/b-checksums.json"))
    # The context is authenticated with every chunk: rewriting it in the header does not help.
    forged = sealed.replace(b"backups/a/a-checksums.json", b"backups/b/b-checksums.json")
    with pytest.raises(DecryptionError, match="fails authentication"):
        decrypt(forged, KEY, "backups/b/b-checksums.json")


def test_the_wrong_key_is_named_by_its_id_before_anything_is_decrypted():
    other = bytes(range(1, 33))
    sealed = encrypt(b"secret", KEY, CHUNK, context="x")
    with pytest.raises(DecryptionError, match=f"another key \\(key id {crypto.key_id(KEY).hex()}; this location's "
                                              f"key has id {crypto.key_id(other).hex()}\\)"):
        decrypt(sealed, other, "x")
    assert KEY not in sealed and crypto.key_id(KEY) in sealed


def test_a_header_split_anywhere_still_opens():
    sealed = encrypt(b"payload" * 500, KEY, CHUNK, context="backups/n/n.tar.gz")
    for cut in range(1, 60):
        sink = io.BytesIO()
        writer = DecryptingWriter(sink, KEY, "backups/n/n.tar.gz")
        writer.write(sealed[:cut])
        writer.write(sealed[cut:])
        writer.close()
        assert sink.getvalue() == b"payload" * 500


def test_version_1_objects_written_before_key_ids_still_open():
    """Sealed as version 1 was (built here from the documented format, not by today's code)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    prefix, plaintext = b"\x07" * 8, os.urandom(CHUNK + 10)
    header = b"KPLENC" + bytes([1]) + CHUNK.to_bytes(4, "big") + prefix
    aead, body = AESGCM(KEY), b""
    for index, (piece, final) in enumerate([(plaintext[:CHUNK], False), (plaintext[CHUNK:], True)]):
        aad = header + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")
        body += aead.encrypt(prefix + index.to_bytes(4, "big"), piece, aad)
    assert crypto.is_encrypted(header[:16])
    assert decrypt(header + body, KEY, "backups/any/any.tar.gz") == plaintext
    with pytest.raises(DecryptionError, match="fails authentication"):
        decrypt(header + body, bytes(range(1, 33)))


def test_an_oversized_context_length_is_refused_before_buffering_it():
    sealed = bytearray(encrypt(b"x", KEY, CHUNK))
    sealed[crypto.HEADER_BYTES - 2:crypto.HEADER_BYTES] = (60000).to_bytes(2, "big")
    with pytest.raises(DecryptionError, match="invalid context length 60000"):
        decrypt(bytes(sealed), KEY)


def test_seal_encrypts_small_objects_bound_to_their_key_only_when_the_location_has_a_key():
    assert crypto.seal(b"log", None, "backups/a/a-logs.gz") == b"log"
    sealed = crypto.seal(b"log", KEY, "backups/a/a-logs.gz")
    assert crypto.is_encrypted(sealed[:16]) and decrypt(sealed, KEY, "backups/a/a-logs.gz") == b"log"
    with pytest.raises(DecryptionError, match="copied from another name"):
        decrypt(sealed, KEY, "backups/b/b-logs.gz")
