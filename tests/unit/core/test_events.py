"""client-go's EventCorrelator, as facts: aggregation after ten similar messages, deduplication by
count, and the per-object spam filter (burst 25, one token per five minutes)."""

from operators.core.events import COMBINED_PREFIX, EventCorrelator


def event(message: str, reason: str = "SuccessfulCreate", name: str = "web") -> dict:
    return {"metadata": {"name": f"{name}.{message}", "namespace": "ns"}, "type": "Normal", "reason": reason,
            "message": message, "source": {"component": "replicaset-controller"}, "count": 1,
            "involvedObject": {"kind": "ReplicaSet", "namespace": "ns", "name": name, "uid": "u",
                               "apiVersion": "apps/v1"}}


def test_a_scale_up_of_500_posts_25_writes_like_upstream():
    correlator = EventCorrelator()
    results = [correlator.correlate(event(f"Created pod: web-{i}"), clock=0.0) for i in range(500)]
    posted = [r for r in results if not r.skip]
    assert len(posted) == 25  # the spam filter's burst
    creates = [r for r in posted if r.patch_name is None]
    patches = [r for r in posted if r.patch_name is not None]
    # Nine distinct events, then one combined event that later writes patch (count going up).
    assert [r.event["message"] for r in creates[:9]] == [f"Created pod: web-{i}" for i in range(9)]
    assert creates[9].event["message"] == COMBINED_PREFIX + "Created pod: web-9"
    assert len(creates) == 10 and len(patches) == 15
    assert {r.patch_name for r in patches} == {creates[9].event["metadata"]["name"]}
    assert patches[-1].event["count"] == 16


def test_identical_events_are_counted_not_repeated():
    correlator = EventCorrelator()
    first = correlator.correlate(event("Error creating: quota"), clock=0.0)
    second = correlator.correlate(event("Error creating: quota"), clock=1.0)
    assert first.patch_name is None
    assert second.patch_name == first.event["metadata"]["name"] and second.event["count"] == 2


def test_spam_filter_is_per_object_and_refills_slowly():
    correlator = EventCorrelator()
    for i in range(25):
        assert not correlator.correlate(event(f"m{i}", reason=f"R{i}"), clock=0.0).skip
    assert correlator.correlate(event("one more", reason="X"), clock=0.0).skip
    assert not correlator.correlate(event("other object", name="db"), clock=0.0).skip
    assert not correlator.correlate(event("later", reason="Y"), clock=300.0).skip  # one token per 5 minutes


def test_aggregation_window_resets_after_ten_minutes():
    correlator = EventCorrelator()
    for i in range(9):
        correlator.correlate(event(f"m{i}"), clock=0.0)
    assert not correlator.correlate(event("late"), clock=601.0).event["message"].startswith(COMBINED_PREFIX)
