"""client-go's EventCorrelator, as facts: aggregation after ten similar messages, deduplication by
count, and the per-object spam filter (burst 25, one token per five minutes)."""

import asyncio
import contextlib

from operators.core.events import COMBINED_PREFIX, EventCorrelator, EventRecorder


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


class SlowSink:
    """A stand-in for the API client's create/patch (pure unit test): each call waits for the test to
    open the gate, and the sink notes how many calls were in flight at once and in what order they ended."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.done: list[tuple[str, str]] = []
        self.expected = 0
        self.finished = asyncio.Event()  # set once `expected` calls have ended

    async def _call(self, verb: str, path: str) -> dict:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            for _ in range(10 if verb == "create" else 1):  # a create answers later than a patch
                await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        self.done.append((verb, path))
        if len(self.done) >= self.expected:
            self.finished.set()
        return {}

    async def create(self, path: str, body: dict) -> dict:
        return await self._call("create", f"{path}/{body['metadata']['name']}")

    async def patch(self, path: str, body: dict) -> dict:
        return await self._call("patch", path)


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "namespace": "ns", "uid": f"u{i}"}}


async def drain(recorder: EventRecorder, sink: SlowSink, expected: int) -> None:
    sink.expected = expected
    runner = asyncio.create_task(recorder.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0)
        sink.gate.set()
        await asyncio.wait_for(sink.finished.wait(), 5)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_a_controllers_recorder_posts_one_event_at_a_time_like_tools_record():
    sink = SlowSink()
    recorder = EventRecorder(sink, "replicaset-controller")  # type: ignore[arg-type]
    for i in range(5):
        recorder.normal(pod(i), "Scheduled", f"assigned p-{i}")
    await drain(recorder, sink, 5)
    assert sink.most_in_flight == 1
    assert [path.rsplit("/", 1)[1].split(".")[0] for _, path in sink.done] == [f"p-{i}" for i in range(5)]


async def test_a_burst_is_posted_concurrently_up_to_the_bound_and_nothing_is_dropped():
    sink = SlowSink()
    recorder = EventRecorder(sink, "kubeplane-scheduler", capacity=100, concurrency=8)  # type: ignore[arg-type]
    for i in range(100):
        recorder.normal(pod(i), "Scheduled", f"assigned p-{i}")
    await drain(recorder, sink, 100)
    assert sink.most_in_flight == 8
    assert len(sink.done) == 100


async def test_a_count_patch_waits_for_the_create_of_its_event():
    sink = SlowSink()
    recorder = EventRecorder(sink, "kubeplane-scheduler", concurrency=8)  # type: ignore[arg-type]
    for _ in range(3):
        recorder.warning(pod(0), "FailedScheduling", "0/3 nodes are available")
    await drain(recorder, sink, 3)
    verbs = [verb for verb, _ in sink.done]
    assert verbs == ["create", "patch", "patch"]
    created = sink.done[0][1]
    assert all(path == created for _, path in sink.done[1:])
