import asyncio

from operators.core.workqueue import RetryLater, WorkQueue


async def test_keys_coalesce_and_never_run_concurrently():
    queue: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    calls: list[str] = []
    overlap = False

    async def sync(key: str) -> None:
        nonlocal overlap
        overlap |= key in running
        running.add(key)
        calls.append(key)
        await asyncio.sleep(0.02)
        if len(calls) == 1:
            queue.add("a")  # re-added while processing: must run again, afterwards
        running.discard(key)

    for _ in range(5):
        queue.add("a")
    task = asyncio.create_task(queue.run_workers(sync, 3))
    await asyncio.sleep(0.2)
    task.cancel()
    assert calls == ["a", "a"]
    assert not overlap


async def test_failures_back_off_and_requeue():
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01)
    attempts = 0

    async def sync(key: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RetryLater("not yet")

    queue.add("k")
    task = asyncio.create_task(queue.run_workers(sync, 1))
    await asyncio.sleep(0.3)
    task.cancel()
    assert attempts == 3


async def test_sync_can_ask_to_look_again_later():
    queue: WorkQueue[str] = WorkQueue()
    times: list[float] = []

    async def sync(key: str) -> float | None:
        times.append(asyncio.get_running_loop().time())
        return 0.1 if len(times) == 1 else None

    queue.add("k")
    task = asyncio.create_task(queue.run_workers(sync, 1))
    await asyncio.sleep(0.3)
    task.cancel()
    assert len(times) == 2 and times[1] - times[0] >= 0.09


async def test_a_cancelled_sync_leaves_a_dirty_key_queued_once():
    queue: WorkQueue[str] = WorkQueue()
    started = asyncio.Event()

    async def sync(key: str) -> None:
        started.set()
        await asyncio.Event().wait()  # never returns: cancelled below

    queue.add("k")
    task = asyncio.create_task(queue.run_workers(sync, 1))
    await started.wait()
    queue.add("k")  # dirty while processing
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert queue._queue.qsize() == 1


class Starved(BaseException):
    """Raised out of the worker when the other task has not run for many syncs (escapes its handlers)."""


async def test_a_key_requeued_at_once_without_io_does_not_starve_the_loop():
    # A sync answered from caches alone never awaits anything real; asking to run again at once must
    # still let other tasks (watches, the Lease's renewals) run. Counted, not timed: between two turns
    # of the other task the worker may sync a couple of times, never hundreds.
    queue: WorkQueue[str] = WorkQueue()
    syncs = 0
    ticks = 0
    syncs_at_tick = 0
    most_between_ticks = 0

    async def sync(key: str) -> float:
        nonlocal syncs, most_between_ticks
        syncs += 1
        most_between_ticks = max(most_between_ticks, syncs - syncs_at_tick)
        if syncs - syncs_at_tick > 100:
            raise Starved
        return 0.0

    queue.add("hot")
    task = asyncio.create_task(queue.run_workers(sync, 1))
    for _ in range(20):
        await asyncio.sleep(0)
        ticks += 1
        syncs_at_tick = syncs
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ticks == 20 and syncs >= 2
    assert most_between_ticks <= 2, f"{most_between_ticks} syncs ran while the other task waited"
