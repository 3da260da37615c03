"""Property-based tests (hypothesis): for generated inputs, what must always hold.

- merge patches: `core.status.merge_diff(old, new)` applied to `old` by RFC 7386's algorithm (written here,
  independently) gives `new`, for any nested JSON objects;
- the backup stream cipher: any plaintext, any chunk size, ciphertext fed in any pieces decrypts to the
  plaintext; cut at any offset, or with any one byte changed, it is refused, never returned short;
- the backup archive: any set of items, read back in any chunking, verifies and yields the same items;
  cut at any offset it is rejected;
- selectors: a label selector's string form parses back to a selector that matches the same label sets;
- restore paths: item paths round-trip; no path a tarball may name that is accepted leaves the restore tree.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.backup import crypto
from operators.backup.archive import (
    ArchiveError,
    ArchiveWriter,
    Limits,
    item_path,
    parse_item_path,
    path_problem,
    verify_archive,
)
from operators.core.selectors import from_label_selector, parse
from operators.core.status import merge_diff

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- merge patches ------------------------------------------------------------------------------------------

KEYS = st.text(alphabet="abcdef", min_size=1, max_size=3)
SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz", max_size=3))
JSON = st.recursive(SCALARS | st.lists(SCALARS, max_size=3),
                    lambda inner: st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=5)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, section 2."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


@SETTINGS
@given(OBJECTS, OBJECTS)
def test_merge_diff_applied_gives_the_new_object(old: dict[str, Any], new: dict[str, Any]) -> None:
    patch = merge_diff(old, new)
    assert apply_merge_patch(old, patch) == new
    assert (patch == {}) == (old == new)


# --- the stream cipher --------------------------------------------------------------------------------------

KEY = crypto.generate_key()


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@SETTINGS
@given(st.binary(max_size=6000), st.integers(1024, 2048), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_plaintext_in_any_pieces_round_trips(plain: bytes, chunk: int, cuts: list[int]) -> None:
    sealed = crypto.encrypt(plain, KEY, chunk_size=chunk)
    opened = b"".join(crypto.decrypt_iter(io.BytesIO(b"".join(pieces(sealed, cuts))), KEY))
    assert opened == plain
    # Fed piece by piece through the writer side as well.
    sink = io.BytesIO()
    writer = crypto.DecryptingWriter(sink, KEY)
    for piece in pieces(sealed, cuts):
        writer.write(piece)
    writer.close()
    assert sink.getvalue() == plain


@SETTINGS
@given(st.binary(min_size=1, max_size=4000), st.integers(1024, 2048), st.data())
def test_cut_or_changed_ciphertext_is_refused(plain: bytes, chunk: int, data: st.DataObject) -> None:
    sealed = crypto.encrypt(plain, KEY, chunk_size=chunk)
    cut = data.draw(st.integers(0, len(sealed) - 1), label="cut")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(sealed[:cut], KEY)
    at = data.draw(st.integers(0, len(sealed) - 1), label="flipped byte")
    changed = bytearray(sealed)
    changed[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(bytes(changed), KEY)


# --- the archive ------------------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=12).filter(
    lambda n: n[0].isalnum() and n[-1].isalnum())


class Chunked(io.RawIOBase):
    """A readable that hands out its bytes in the given piece sizes (cycled)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.at, self.turn = data, sizes or [len(data) or 1], 0, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self.sizes[self.turn % len(self.sizes)]
        self.turn += 1
        if size is not None and size >= 0:
            want = min(want, size)
        piece = self.data[self.at:self.at + max(want, 1)]
        self.at += len(piece)
        return piece


def configmap(namespace: str, name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"value": value}}


ITEMS = st.dictionaries(st.tuples(NAMES, NAMES), st.text(max_size=200), min_size=1, max_size=8)


def write(items: dict[tuple[str, str], str]) -> tuple[bytes, Any]:
    sink = io.BytesIO()
    writer = ArchiveWriter(sink, mtime=0)
    for (namespace, name), value in sorted(items.items()):
        writer.add_item(configmap(namespace, name, value), "configmaps")
    manifest = writer.close()
    return sink.getvalue(), manifest


@SETTINGS
@given(ITEMS, st.lists(st.integers(1, 700), max_size=5))
def test_any_archive_read_in_any_chunking_verifies_with_its_items(items: dict[tuple[str, str], str],
                                                                  sizes: list[int]) -> None:
    tarball, manifest = write(items)
    seen: dict[str, bytes] = {}
    verify_archive(Chunked(tarball, sizes), manifest, Limits(),  # type: ignore[arg-type]
                   on_member=lambda path, data: seen.__setitem__(path, data))
    restored = {p for p in seen if p.startswith("resources/configmaps/namespaces/")}
    assert len(restored) == len(items)


@SETTINGS
@given(ITEMS, st.data())
def test_a_cut_archive_is_rejected(items: dict[tuple[str, str], str], data: st.DataObject) -> None:
    tarball, manifest = write(items)
    cut = data.draw(st.integers(0, len(tarball) - 1), label="cut")
    with pytest.raises((ArchiveError, EOFError, OSError)):
        verify_archive(io.BytesIO(tarball[:cut]), manifest, Limits())


# --- selectors ------------------------------------------------------------------------------------------------

LABEL_KEYS = st.sampled_from(["app", "tier", "example.com/team", "zone"])
LABEL_VALUES = st.sampled_from(["a", "b", "web", "db-1"])
REQUIREMENTS = st.lists(st.one_of(
    st.builds(lambda k, vs: {"key": k, "operator": "In", "values": sorted(set(vs))}, LABEL_KEYS,
              st.lists(LABEL_VALUES, min_size=1, max_size=3)),
    st.builds(lambda k, vs: {"key": k, "operator": "NotIn", "values": sorted(set(vs))}, LABEL_KEYS,
              st.lists(LABEL_VALUES, min_size=1, max_size=3)),
    st.builds(lambda k: {"key": k, "operator": "Exists"}, LABEL_KEYS),
    st.builds(lambda k: {"key": k, "operator": "DoesNotExist"}, LABEL_KEYS),
), max_size=3)
LABEL_SETS = st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4)


@SETTINGS
@given(st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=2), REQUIREMENTS, st.lists(LABEL_SETS, max_size=6))
def test_a_selectors_string_form_selects_the_same(match: dict[str, str], expressions: list[dict[str, Any]],
                                                  label_sets: list[dict[str, str]]) -> None:
    selector = from_label_selector({"matchLabels": match, "matchExpressions": expressions})
    again = parse(str(selector))
    for labels in label_sets:
        assert selector.matches(labels) == again.matches(labels), (str(selector), labels)


# --- restore paths --------------------------------------------------------------------------------------------

SEGMENT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\\\x00"), min_size=1, max_size=20).filter(
    lambda s: s not in (".", ".."))
ANY_PATH = st.lists(st.sampled_from(["a", "/", ".", "..", "\\", "\x00", "resources", "namespaces", "cluster",
                                      "x.json", "metadata", "version"]), max_size=12).map("".join)


@SETTINGS
@given(SEGMENT, st.one_of(st.just(""), SEGMENT), SEGMENT, st.one_of(st.just(""), SEGMENT))
def test_item_paths_round_trip(group_resource: str, namespace: str, name: str, version: str) -> None:
    if version in ("cluster", "namespaces"):
        return  # a version directory cannot be named like the scope directories (Velero's layout)
    path = item_path(group_resource, namespace, name, version)
    assert path_problem(path, Limits(max_path_length=10_000)) is None
    parsed = parse_item_path(path)
    assert (parsed.group_resource, parsed.namespace, parsed.name) == (group_resource, namespace, name)


@SETTINGS
@given(ANY_PATH)
def test_no_accepted_path_leaves_the_restore_tree(path: str) -> None:
    """Whatever a tarball names, an accepted path is relative, has no '.', '..' or empty segment, and
    stays under resources/ or is metadata/version."""
    if path_problem(path) is not None:
        return
    segments = path.split("/")
    assert not path.startswith("/") and "\\" not in path and "\x00" not in path
    assert all(s not in ("", ".", "..") for s in segments)
    assert segments[0] == "resources" or path == "metadata/version"
