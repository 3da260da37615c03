"""Lease leader election decisions (operators.core.leader): who may take a Lease, what gets written."""

from __future__ import annotations

from operators.core.leader import LeaseTiming, claimed_spec, may_acquire

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=2)
NOW = "2026-11-22T02:00:00.000000Z"


def test_free_released_or_own_lease_may_be_taken_at_once() -> None:
    assert may_acquire({}, "me", 0, TIMING)
    assert may_acquire({"holderIdentity": ""}, "me", 0, TIMING)
    assert may_acquire({"holderIdentity": "me", "leaseDurationSeconds": 15}, "me", 0, TIMING)


def test_another_holder_keeps_it_until_unchanged_for_its_duration() -> None:
    held = {"holderIdentity": "other", "leaseDurationSeconds": 15}
    assert not may_acquire(held, "me", 0, TIMING)
    assert not may_acquire(held, "me", 14.9, TIMING)
    assert may_acquire(held, "me", 15, TIMING)
    # The holder's own duration counts, not ours.
    assert not may_acquire({"holderIdentity": "other", "leaseDurationSeconds": 60}, "me", 30, TIMING)


def test_taking_over_counts_a_transition_and_resets_acquire_time() -> None:
    old = {"holderIdentity": "other", "acquireTime": "2026-11-22T01:00:00.000000Z", "leaseTransitions": 3}
    spec = claimed_spec(old, "me", TIMING, NOW)
    assert spec == {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": NOW, "renewTime": NOW,
                    "leaseTransitions": 4}


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    mine = {"holderIdentity": "me", "acquireTime": "2026-11-22T01:00:00.000000Z", "leaseTransitions": 4}
    spec = claimed_spec(mine, "me", TIMING, NOW)
    assert spec["acquireTime"] == "2026-11-22T01:00:00.000000Z"
    assert spec["renewTime"] == NOW
    assert spec["leaseTransitions"] == 4


def test_first_claim_of_a_free_lease_is_not_a_transition() -> None:
    assert claimed_spec({}, "me", TIMING, NOW)["leaseTransitions"] == 0
    assert claimed_spec({"holderIdentity": "", "leaseTransitions": 2}, "me", TIMING, NOW)["leaseTransitions"] == 2
