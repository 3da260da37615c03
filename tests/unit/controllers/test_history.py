"""ControllerRevision history helpers (common/history.py) and condition time stamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operators.controllers.common import history
from operators.core import conditions

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}


def test_fnv32a_matches_the_reference_vectors() -> None:
    # FNV-1a 32-bit reference values (the FNV authors' test suite).
    assert history.fnv32a(b"") == 0x811C9DC5
    assert history.fnv32a(b"a") == 0xE40C292C
    assert history.fnv32a(b"foobar") == 0xBF9CF968


def test_hash_alphabet_length_stability_and_collision_count() -> None:
    value = history.hash_of(TEMPLATE)
    assert 1 <= len(value) <= 10 and set(value) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert set(value) <= set("bcdf456789"), "decimal digits map onto 10 characters of the alphabet"
    assert history.hash_of(TEMPLATE) == value  # stable
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert history.hash_of(reordered) == value  # canonical: key order does not matter
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    assert history.hash_of(changed) != value
    assert history.hash_of(TEMPLATE, collision_count=1) != value  # a collision count picks another name
    assert history.hash_of(TEMPLATE, collision_count=1) != history.hash_of(TEMPLATE, collision_count=2)


def test_revision_names_are_cut_to_fit() -> None:
    assert history.revision_name("web", "5d8f") == "web-5d8f"
    long = history.revision_name("x" * 300, "5d8f")
    assert long == "x" * 223 + "-5d8f" and len(long) <= 253


def revision(name: str, number: int, created: str, data: object = None) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created}, "revision": number, "data": data}


def test_sort_next_and_truncate() -> None:
    revisions = [revision("c", 3, "2026-01-03T00:00:00Z"), revision("a", 1, "2026-01-01T00:00:00Z"),
                 revision("b2", 2, "2026-01-02T00:00:01Z"), revision("b1", 2, "2026-01-02T00:00:00Z")]
    assert [r["metadata"]["name"] for r in history.sort_revisions(revisions)] == ["a", "b1", "b2", "c"]
    assert history.next_revision(revisions) == 4 and history.next_revision([]) == 1
    # Keep two; "a" is oldest but still used by a live object, so the next oldest go.
    gone = history.to_truncate(revisions, keep=2, live={"a"})
    assert [r["metadata"]["name"] for r in gone] == ["b1"]
    assert history.to_truncate(revisions, keep=10, live=set()) == []


def test_equal_revisions_compare_data_semantically() -> None:
    revisions = [revision("a", 1, "2026-01-01T00:00:00Z", {"spec": {"x": 1, "y": [1, 2]}}),
                 revision("b", 2, "2026-01-02T00:00:00Z", {"spec": {"x": 2}})]
    assert [r["metadata"]["name"] for r in history.equal_revisions(revisions, {"spec": {"y": [1, 2], "x": 1}})] == ["a"]


def test_condition_stamps() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    first = conditions.set_condition([], "Progressing", "True", "NewReplicaSetCreated", "m", now,
                                     stamps=("lastUpdateTime",))
    assert first[0]["lastUpdateTime"] == first[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    later = now + timedelta(minutes=5)
    again = conditions.set_condition(first, "Progressing", "True", "ReplicaSetUpdated", "m2", later,
                                     stamps=("lastUpdateTime",))
    # Same status: the transition time stays, the update time moves.
    assert again[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert again[0]["lastUpdateTime"] == "2026-01-01T12:05:00Z"
