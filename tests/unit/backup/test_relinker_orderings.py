"""The restore's relinker under every ordering a concurrent restore can produce (hypothesis).

A generated backup: N ConfigMaps in one namespace, each owning some of the others (cycles and self
references allowed, plus references to owners outside the backup). A generated run: some items fail, and
the calls restore_run makes for each item (`references_for_create` before its create is sent, then
`created` or `failed` when the answer comes) are interleaved in any order, creates in flight at once.
A simulated API server applies each create and each patch (with its uid precondition).

What must hold at the end, whatever the order:
- every created object's ownerReferences are exactly its in-backup, created owners' references, in
  backup order, each pointing at the owner's new uid (nothing dangling, nothing lost);
- a patch only ever goes to an object that exists, with that object's uid as its precondition;
- every reference left out is named in a warning.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.backup.ownership import OwnerIndex, Relinker, item_key
from tests.unit.backup.objects import obj, owner_ref


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], set[int], list[tuple[str, int]]]:
    n = draw(st.integers(min_value=1, max_value=7))
    items = []
    for i in range(n):
        owners = draw(st.lists(st.integers(min_value=0, max_value=n), max_size=3, unique=True))
        refs = [owner_ref("ConfigMap", f"cm-{o}", f"old-{o}", controller=False) if o < n
                else owner_ref("ConfigMap", "ghost", "old-ghost", controller=False) for o in owners]
        items.append(obj("ConfigMap", f"cm-{i}", "ns", uid=f"old-{i}", owners=refs))
    failing = set(draw(st.lists(st.integers(min_value=0, max_value=n - 1), unique=True)))
    # Each item: ("begin", i) then ("end", i); any interleaving that keeps that order per item.
    pending = {i: ["begin", "end"] for i in range(n)}
    order: list[tuple[str, int]] = []
    while pending:
        i = draw(st.sampled_from(sorted(pending)))
        order.append((pending[i].pop(0), i))
        if not pending[i]:
            del pending[i]
    return items, failing, order


@settings(max_examples=300, deadline=None)
@given(runs())
def test_every_ordering_ends_with_exactly_the_created_owners_linked(
        run: tuple[list[dict[str, Any]], set[int], list[tuple[str, int]]]) -> None:
    items, failing, order = run
    keys = [item_key("configmaps", o) for o in items]
    relinker = Relinker(OwnerIndex.build(zip(keys, items, strict=True)), keys)
    server: dict[int, dict[str, Any]] = {}  # index -> {"uid", "refs"}
    warnings: list[str] = []
    by_key = {k: i for i, k in enumerate(keys)}

    def apply(patches: list[Any]) -> None:
        for patch in patches:
            target = server.get(by_key[patch.key])
            assert target is not None, f"a patch for {patch.key}, which does not exist"
            assert patch.patch["metadata"]["uid"] == target["uid"] == patch.uid, "the uid precondition"
            target["refs"] = patch.patch["metadata"]["ownerReferences"]

    for phase, i in order:
        refs = items[i]["metadata"]["ownerReferences"]
        if phase == "begin":
            now, dropped = relinker.references_for_create(keys[i], refs)
            warnings += dropped
            items[i]["_sent"] = now
        elif i in failing:
            relinker.failed(keys[i], f"old-{i}")
        else:
            server[i] = {"uid": f"new-{i}", "refs": items[i].pop("_sent")}
            apply(relinker.created(keys[i], f"old-{i}", f"new-{i}"))
    warnings += relinker.finish()

    for i, created in server.items():
        expected = []
        for ref in items[i]["metadata"]["ownerReferences"]:
            owner = int(ref["uid"].removeprefix("old-")) if ref["uid"] != "old-ghost" else None
            if owner is not None and owner in server:
                expected.append({**ref, "uid": f"new-{owner}"})
            else:
                assert any(w.startswith(f"{keys[i]}: ownerReference to ConfigMap {ref['name']} ") for w in warnings), \
                    f"{keys[i]}: the reference to {ref['name']} left out without a warning: {warnings}"
        assert created["refs"] == expected, f"{keys[i]}: {created['refs']} != {expected} (order {order})"
