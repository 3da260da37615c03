"""The kubeplane scheduler operator: `kubeplane run scheduler`.

Pods opt in with `spec.schedulerName: kubeplane-scheduler` (or the name in the environment
variable KUBEPLANE_SCHEDULER_NAME, e.g. to run a second scheduler beside the first). The I/O
around the pure core (framework.schedule_one) is upstream's scheduleOne:

- Raw informers (list+watch, informers.py) keep the views of pods (by node, nominated, pending
  ones of ours, PodGroup members), nodes and namespace labels; Kopf watches only the low-volume
  PodGroups and SchedulerProfiles. Event handlers only enqueue (the scheduling queue) and mark
  cache entries dirty.
- One scheduling loop, cycles strictly serial: pop the highest-priority pod, refresh the
  snapshot (dirty nodes only), `schedule_one`, and on success assume the pod in the cache and
  bind it in a separate asyncio task (the binding cycle), so the next cycle starts at once and
  already sees the pod's resources.
- A failed binding forgets the assumption and requeues with backoff; 409 (already bound) or
  404 (gone) drops the pod.
- No node fits: PodScheduled=False/Unschedulable with upstream's message, a FailedScheduling
  Warning, preemption's nomination and victim deletion if it found any, and the pod waits among
  the unschedulable pods for a node event or a pod deletion (at most 5 minutes).

- One active replica: a Lease named after the scheduler (in KUBEPLANE_NAMESPACE, default
  kubeplane-system) elects the leader, as kube-scheduler does; the others keep their caches warm
  and schedule nothing until they lead. A leader that cannot renew stops scheduling and exits.
  KUBEPLANE_LEADER_ELECT=false turns election off.

- Gang scheduling (gang.py, after scheduler-plugins' Coscheduling): pods labelled
  `scheduling.kubeplane.dev/pod-group: <name>` belong to that PodGroup. PreFilter rejects a member
  while its group is missing, has fewer than minMember pods, or minResources cannot be covered; a
  member that found a node is assumed (reserved) but its binding waits until minMember members are
  placed, and then every waiting member binds at once. When the first waiting member has waited
  scheduleTimeoutSeconds, every waiting member is forgotten and retried with backoff, with a
  FailedScheduling event each, and the PodGroup says Unschedulable. The scheduler writes the
  PodGroup's status (phase, scheduled, running, message) with a merge patch when it changes.

- Profiles (profiles.py): the oldest cluster-scoped SchedulerProfile naming this scheduler replaces
  the default profile at once, without a restart (the next cycle uses it); deleting it reverts to
  the default. Its Accepted condition says whether it runs, or why not (invalid, or shadowed by an
  older profile for the same scheduler).

Not here yet: the Services / controllers / PDBs that default topology spreading and preemption read.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from operators.core import conditions, metrics, trim
from operators.core import pods as podutil
from operators.core.events import EventRecorder
from operators.core.informer import Informer
from operators.core.kube import MERGE_PATCH, STRATEGIC_PATCH, ApiError, Kube
from operators.core.leader import LeaderElector, campaign, elector_for, shut_down
from operators.core.settings import configure_common
from operators.core.timeutil import format_time, now, parse_time
from operators.scheduler import gang, helpers, profiles
from operators.scheduler.cache import Index, SchedulerCache, first
from operators.scheduler.framework import Profile, Result, at_random, default_profile, schedule_one
from operators.scheduler.informers import ByName, PodViews
from operators.scheduler.messages import truncate_message
from operators.scheduler.plugins import REGISTRY
from operators.scheduler.queue import SchedulingQueue
from operators.scheduler.status import Code, Status

logger = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "kubeplane-scheduler"
# The spec.schedulerName of the pods this scheduler handles, and the component of its events.
SCHEDULER_NAME = os.environ.get("KUBEPLANE_SCHEDULER_NAME") or DEFAULT_SCHEDULER_NAME
Key = tuple[str, str]
EXPLANATIONS_KEPT = 1000
# Event posts in flight: kube-scheduler posts each event on a goroutine of its own; a serial poster fell
# behind a burst of bindings and dropped most Scheduled events (3,686 of 5,000 at 1,000 nodes; 16 at once
# still dropped 2,607 at 219 bindings a second).
EVENT_POSTS_IN_FLIGHT = 64
EVENT_REPEAT_SECONDS = 60.0
GROUP_STATUS_DEBOUNCE_SECONDS = 0.2
GC_THRESHOLD = 20_000


# --- what the indexes keep -------------------------------------------------------------------


def is_pending_for_us(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        spec.get("schedulerName") == SCHEDULER_NAME
        and not spec.get("nodeName")
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and not podutil.is_terminal(pod)
    )


def _pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def _node_signature(node: Mapping[str, Any]) -> Any:
    """What of a node matters to scheduling: a heartbeat alone does not retry pods."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    return (meta.get("labels"), node.get("spec"), status.get("allocatable"))


# --- the scheduler ---------------------------------------------------------------------------


class _NoIndex:
    """An empty index (PodGroups when the scheduler is built without them)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def keys(self) -> Any:
        return ()

    def __contains__(self, key: object) -> bool:
        return False


@dataclass
class WaitingGroup:
    """Members of one PodGroup that have a reserved node and wait for the rest (Permit's Wait)."""

    since: float
    timeout_seconds: float
    pods: dict[Key, tuple[dict[str, Any], str]] = field(default_factory=dict)  # key -> (pod, node)


class Scheduler:
    def __init__(
        self, kube: Kube, nodes: Index, pods_by_node: Index, nominated: Index, pending: Index, namespaces: Index,
        profile: Profile | None = None, leader: LeaderElector | None = None,
        pod_groups: Index | None = None, group_members: Index | None = None,
    ) -> None:
        self.kube = kube
        self.pod_groups: Index = pod_groups if pod_groups is not None else _NoIndex()
        self.group_members: Index = group_members if group_members is not None else _NoIndex()
        self.waiting: dict[gang.GroupKey, WaitingGroup] = {}
        self.group_failures: dict[gang.GroupKey, tuple[str, str]] = {}  # -> (kind, message)
        self._groups_dirty: set[gang.GroupKey] = set()
        self._groups_changed = asyncio.Event()
        self._group_specs: dict[gang.GroupKey, Any] = {}
        self.leader = leader
        self.pending = pending
        self.cache = SchedulerCache(nodes, pods_by_node, nominated, namespaces)
        self.queue: SchedulingQueue[Key] = SchedulingQueue()
        self.profile = profile or default_profile()
        self._default_profile = self.profile
        self._profile_objects: dict[str, dict[str, Any]] = {}
        self._profile_in_use: tuple[str, int] | None = None  # (SchedulerProfile name, generation)
        self.events = EventRecorder(kube, SCHEDULER_NAME, concurrency=EVENT_POSTS_IN_FLIGHT)
        self.synced = asyncio.Event()
        self.next_start_index = 0
        self.explanations: OrderedDict[Key, Result] = OrderedDict()
        self._node_signatures: dict[str, Any] = {}
        self._last_event: dict[Key, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    def start(self, tasks: list[asyncio.Task[None]] | None = None) -> None:
        """Run the scheduling loop and its helpers (and `tasks`, e.g. the informers, until stop())."""
        self._loops = [
            *(tasks or ()),
            asyncio.create_task(self.run(), name="scheduling loop"),
            asyncio.create_task(self.events.run(), name="scheduler events"),
            asyncio.create_task(self.group_status_loop(), name="pod group status"),
        ]
        self._loops += campaign(self.leader)

    async def stop(self) -> None:
        await shut_down([*self._loops, *self._tasks], self.leader, self.kube)

    def leading(self) -> bool:
        return self.leader is None or self.leader.leading.is_set()

    # --- event handlers: enqueue only ---------------------------------------------------------

    def on_node_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name") or ""
        self.cache.node_changed(name)
        if event_type == "DELETED":
            self._node_signatures.pop(name, None)
            return
        signature = _node_signature(body)
        if self._node_signatures.get(name) != signature:
            self._node_signatures[name] = signature
            self.queue.move_all_to_active()

    def on_pod_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = helpers.namespaced_name(body)
        deleted = event_type == "DELETED"
        group = gang.group_key(body)
        if group is not None:
            self._group_changed(group)
            if (deleted or not is_pending_for_us(body)) and self._drop_waiting(group, key) and not deleted:
                self.cache.forget(helpers.pod_key(body))  # bound or finished elsewhere: not ours to hold
            elif event_type == "ADDED" and key not in self.queue:
                # A new member may complete its group: retry the members PreFilter turned away.
                self.queue.move_all_to_active()
        if not deleted and is_pending_for_us(body):
            self.queue.add(key, helpers.pod_priority(body))
        else:
            self.queue.delete(key)
            self._last_event.pop(key, None)
        node = (body.get("spec") or {}).get("nodeName")
        if node:
            self.cache.node_changed(node)
        if deleted:
            self.cache.pod_deleted(helpers.pod_key(body))
            self.explanations.pop(key, None)
            if node:
                self.queue.move_all_to_active()
        elif node and podutil.is_terminal(body):
            self.queue.move_all_to_active()

    def on_pod_group_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        group = (meta.get("namespace") or "", meta.get("name") or "")
        self._group_changed(group)
        if event_type == "DELETED":
            self.group_failures.pop(group, None)
            return
        spec = body.get("spec")
        if event_type is None or self._group_specs.get(group) != spec:
            self._group_specs[group] = spec
            self.queue.move_all_to_active()

    def on_profile_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name") or ""
        if event_type == "DELETED":
            self._profile_objects.pop(name, None)
        else:
            self._profile_objects[name] = dict(body)
        self._apply_profiles()

    def _apply_profiles(self) -> None:
        """Run with the profile the SchedulerProfiles call for; say on each of ours what became of it."""
        choice = profiles.choose(list(self._profile_objects.values()), SCHEDULER_NAME)
        verdicts: list[tuple[Mapping[str, Any], str, str, str]] = []
        in_use: tuple[str, int] | None = None
        profile = self._default_profile
        if choice.chosen is not None:
            meta = choice.chosen.get("metadata") or {}
            in_use = (meta.get("name") or "", int(meta.get("generation") or 0))
            try:
                profile = profiles.to_profile(choice.chosen.get("spec") or {}, REGISTRY, self._default_profile)
                verdicts.append((choice.chosen, "True", "Applied",
                                 f"scheduler {SCHEDULER_NAME} runs with this profile"))
            except ValueError as e:
                in_use, profile = self._profile_in_use, self.profile  # keep what runs now
                verdicts.append((choice.chosen, "False", "Invalid", f"not applied: {e}"))
            older = choice.chosen.get("metadata", {}).get("name")
            for other in choice.shadowed:
                verdicts.append((other, "False", "Shadowed",
                                 f"scheduler {SCHEDULER_NAME} runs with the older SchedulerProfile {older}"))
        if in_use != self._profile_in_use:
            logger.info("scheduler profile: %s", f"SchedulerProfile {in_use[0]}" if in_use else "the default")
            self._profile_in_use, self.profile = in_use, profile
            self.queue.move_all_to_active()  # pods found unschedulable may fit under the new rules
        for body, status, reason, message in verdicts:
            self._spawn(self._write_profile_status(body, status, reason, message), "profile status")

    async def _write_profile_status(self, body: Mapping[str, Any], status: str, reason: str, message: str) -> None:
        if self.leader is not None:
            await self.leader.leading.wait()  # one writer: the leader
        meta = body.get("metadata") or {}
        current = body.get("status") or {}
        previous = conditions.find(current.get("conditions"), "Accepted") or {}
        generation = meta.get("generation")
        if (previous.get("status"), previous.get("reason"), previous.get("message")) == (status, reason, message) \
                and current.get("observedGeneration") == generation:
            return
        updated = conditions.set_condition(current.get("conditions"), "Accepted", status, reason, message, now())
        path = f"/apis/{profiles.GROUP}/{profiles.VERSION}/{profiles.PLURAL}/{meta.get('name')}/status"
        try:
            await self.kube.patch(path, {"status": {"observedGeneration": generation, "conditions": updated}},
                                  content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status != 404:
                logger.warning("could not write SchedulerProfile %s status: %s", meta.get("name"), e)

    # --- the scheduling loop ------------------------------------------------------------------

    async def run(self) -> None:
        await self.synced.wait()
        if self.leader is not None:
            logger.info("waiting to lead (Lease %s/%s) before scheduling", self.leader.namespace, self.leader.name)
            await self.leader.leading.wait()
        logger.info("scheduling loop started")
        while True:
            self._report_queue()
            key = await self.queue.pop()
            if not self.leading():
                # Leadership lost while waiting: another replica may be placing this pod already.
                # It stays pending; whoever leads next picks it up. (The process is exiting.)
                return
            try:
                self.schedule(key)
            except Exception:
                logger.exception("scheduling %s/%s failed", *key)
                metrics.SCHEDULER_ATTEMPTS.labels("error").inc()
                self.queue.backoff(key)
            # Let the watches, bindings and status writes run between cycles.
            await asyncio.sleep(0)

    def _report_queue(self) -> None:
        for name, size in self.queue.sizes().items():
            metrics.SCHEDULER_PENDING_PODS.labels(name).set(size)

    def schedule(self, key: Key) -> None:
        """One scheduling cycle (synchronous: nothing else changes the cache meanwhile)."""
        pod = first(self.pending.get(key))
        if pod is None or not is_pending_for_us(pod):
            self.queue.delete(key)
            return
        uid = helpers.pod_key(pod)
        if self.cache.is_assumed(uid):  # placed already, the binding is in flight
            self.queue.done(key)
            return
        snapshot = self.cache.refresh()
        started = time.perf_counter()
        group = gang.group_key(pod)
        if group is not None:
            rejection = self._gang_pre_filter(group, pod)
            if rejection is not None:
                self._gang_reject(key, pod, group, rejection, started)
                return
        result = schedule_one(pod, snapshot, self.profile, start_index=self.next_start_index, now=now(),
                              tie_break=at_random)
        self.next_start_index = result.next_start_index
        result.state = type(result.state)()  # plugin state is not needed afterwards; free it
        self._remember(key, result)
        elapsed = time.perf_counter() - started
        if result.status.code is Code.SUCCESS and result.suggested_host:
            metrics.SCHEDULER_ATTEMPTS.labels("scheduled").inc()
            metrics.SCHEDULER_ATTEMPT_SECONDS.labels("scheduled").observe(elapsed)
            self.cache.assume(pod, result.suggested_host)
            self.queue.done(key)
            if group is not None and not self._gang_permit(key, pod, group, result.suggested_host):
                return  # reserved; waits for the rest of its group
            self._spawn(self.bind(key, pod, result.suggested_host), f"bind {key[0]}/{key[1]}")
        elif result.status.is_rejected():
            metrics.SCHEDULER_ATTEMPTS.labels("unschedulable").inc()
            metrics.SCHEDULER_ATTEMPT_SECONDS.labels("unschedulable").observe(elapsed)
            self.queue.unschedulable(key)
            self._spawn(self.report_failure(key, pod, result), f"failure {key[0]}/{key[1]}")
        else:
            metrics.SCHEDULER_ATTEMPTS.labels("error").inc()
            metrics.SCHEDULER_ATTEMPT_SECONDS.labels("error").observe(elapsed)
            logger.warning("scheduling %s/%s: %s", key[0], key[1], result.message)
            self.queue.backoff(key)
            self._spawn(self.report_failure(key, pod, result), f"failure {key[0]}/{key[1]}")

    # --- gang scheduling (PreFilter, Permit, timeout) -----------------------------------------

    def _pod_group(self, group: gang.GroupKey) -> gang.PodGroup | None:
        body = first(self.pod_groups.get(group))
        return gang.PodGroup.of(body) if body is not None else None

    def _members(self, group: gang.GroupKey) -> list[gang.Member]:
        return [gang.Member.of(p) for p in self.group_members.get(group) or ()]

    def _reserved(self, group: gang.GroupKey) -> dict[str, dict[str, Any]]:
        """The group's members assumed in the cache (waiting or binding), by uid."""
        return {uid: a.pod for uid, a in self.cache.assumed.items() if gang.group_key(a.pod) == group}

    def _gang_pre_filter(self, group: gang.GroupKey, pod: Mapping[str, Any]) -> str | None:
        pod_group = self._pod_group(group)
        members = self._members(group)
        uids = {m.uid for m in members}
        count = len(uids | {helpers.pod_key(pod)})
        available = None
        if pod_group is not None and pod_group.min_resources:
            available = gang.free_resources(self.cache.snapshot.node_list())
            held = [*self._reserved(group).values()]
            held_uids = set(self._reserved(group))
            held += [p for p in self.group_members.get(group) or ()
                     if (p.get("spec") or {}).get("nodeName") and helpers.pod_key(p) not in held_uids]
            extra = gang.held_resources(held)
            available.milli_cpu += extra.milli_cpu
            available.memory += extra.memory
            available.ephemeral_storage += extra.ephemeral_storage
            for name, amount in extra.scalar.items():
                available.scalar[name] = available.scalar.get(name, 0) + amount
        rejection = gang.pre_filter(group[1], pod_group, count, available)
        if rejection is None and self.group_failures.get(group, ("", ""))[0] == "preFilter":
            del self.group_failures[group]
            self._group_changed(group)
        return rejection

    def _gang_reject(self, key: Key, pod: Mapping[str, Any], group: gang.GroupKey, message: str,
                     started: float) -> None:
        result = Result(pod=f"{key[0]}/{key[1]}", status=Status.unschedulable(message), message=message,
                        num_all_nodes=len(self.cache.snapshot), next_start_index=self.next_start_index)
        self._remember(key, result)
        metrics.SCHEDULER_ATTEMPTS.labels("unschedulable").inc()
        metrics.SCHEDULER_ATTEMPT_SECONDS.labels("unschedulable").observe(time.perf_counter() - started)
        self.queue.unschedulable(key)
        self._set_group_failure(group, "preFilter", message)
        self._spawn(self.report_failure(key, pod, result), f"failure {key[0]}/{key[1]}")

    def _gang_permit(self, key: Key, pod: Mapping[str, Any], group: gang.GroupKey, node: str) -> bool:
        """After the pod was assumed: True to bind it now (the waiting members of its group are
        released to bind as well), False when it waits for the rest of its group."""
        pod_group = self._pod_group(group)
        min_member = pod_group.min_member if pod_group is not None else 1
        placed = gang.count_placed(self._members(group), self._reserved(group))
        self._group_changed(group)
        if gang.permit(min_member, placed):
            waiting = self.waiting.pop(group, None)
            self.group_failures.pop(group, None)
            for other, (other_pod, other_node) in (waiting.pods.items() if waiting else ()):
                self._spawn(self.bind(other, other_pod, other_node), f"bind {other[0]}/{other[1]}")
            if waiting is not None:
                logger.info("pod group %s/%s: %d of minMember %d placed; binding %d waiting member(s)",
                            *group, placed, min_member, len(waiting.pods))
            return True
        entry = self.waiting.get(group)
        if entry is None:
            timeout = pod_group.timeout_seconds if pod_group is not None else gang.DEFAULT_TIMEOUT_SECONDS
            entry = self.waiting[group] = WaitingGroup(time.monotonic(), timeout)
            self._spawn(self._gang_timer(group, entry), f"pod group timer {group[0]}/{group[1]}")
        entry.pods[key] = (dict(pod), node)
        logger.info("%s/%s reserved on %s, waiting: pod group %s has %d of minMember %d placed",
                    key[0], key[1], node, group[1], placed, min_member)
        return False

    async def _gang_timer(self, group: gang.GroupKey, entry: WaitingGroup) -> None:
        delay = entry.since + entry.timeout_seconds - time.monotonic()
        await asyncio.sleep(max(delay, 0.0))
        if self.waiting.get(group) is entry and gang.timed_out(entry.since, time.monotonic(), entry.timeout_seconds):
            self.gang_timeout(group)

    def gang_timeout(self, group: gang.GroupKey) -> None:
        """The group's first waiting member waited too long: unreserve every waiting member and
        retry it with backoff; each gets a FailedScheduling, the PodGroup an Unschedulable phase."""
        entry = self.waiting.pop(group, None)
        if entry is None:
            return
        pod_group = self._pod_group(group)
        min_member = pod_group.min_member if pod_group is not None else 1
        placed = gang.count_placed(self._members(group), self._reserved(group))
        message = gang.timeout_message(group[1], placed, min_member, entry.timeout_seconds)
        logger.info("%s/%s: %s", group[0], group[1], message)
        for key, (pod, _) in entry.pods.items():
            self.cache.forget(helpers.pod_key(pod))
            self.queue.requeue(key, helpers.pod_priority(pod))
            result = Result(pod=f"{key[0]}/{key[1]}", status=Status.unschedulable(message), message=message)
            self._remember(key, result)
            self._spawn(self.report_failure(key, pod, result), f"failure {key[0]}/{key[1]}")
        self._set_group_failure(group, "timeout", message)
        self.queue.move_all_to_active()  # the reservations' room is free again

    def _drop_waiting(self, group: gang.GroupKey, key: Key) -> bool:
        """A waiting member was deleted, or bound by someone else: it waits no more."""
        entry = self.waiting.get(group)
        if entry is None or entry.pods.pop(key, None) is None:
            return False
        if not entry.pods:
            del self.waiting[group]
        return True

    def _set_group_failure(self, group: gang.GroupKey, kind: str, message: str) -> None:
        self.group_failures[group] = (kind, message)
        self._group_changed(group)

    def _group_changed(self, group: gang.GroupKey) -> None:
        self._groups_dirty.add(group)
        self._groups_changed.set()

    # --- PodGroup status ----------------------------------------------------------------------

    async def group_status_loop(self) -> None:
        await self.synced.wait()
        while True:
            await self._groups_changed.wait()
            await asyncio.sleep(GROUP_STATUS_DEBOUNCE_SECONDS)
            self._groups_changed.clear()
            if not self.leading() and self.leader is not None:
                await self.leader.leading.wait()  # the leader writes; a standby keeps the groups dirty
            dirty, self._groups_dirty = self._groups_dirty, set()
            for group in sorted(dirty):
                try:
                    await self.write_group_status(group)
                except ApiError as e:
                    if not e.not_found:
                        logger.warning("writing the status of pod group %s/%s: %s", *group, e)
                        self._groups_dirty.add(group)
                except Exception:
                    logger.exception("writing the status of pod group %s/%s", *group)
                    self._groups_dirty.add(group)
            if self._groups_dirty:
                await asyncio.sleep(1.0)
                self._groups_changed.set()

    def group_status(self, group: gang.GroupKey) -> tuple[gang.PodGroup, dict[str, Any]] | None:
        pod_group = self._pod_group(group)
        if pod_group is None:
            return None
        entry = self.waiting.get(group)
        failure = self.group_failures.get(group)
        desired = gang.desired_status(pod_group, self._members(group), len(entry.pods) if entry else 0,
                                      failure[1] if failure else None)
        return pod_group, desired

    async def write_group_status(self, group: gang.GroupKey) -> None:
        computed = self.group_status(group)
        if computed is None:
            return
        pod_group, desired = computed
        if desired["phase"] in (gang.SCHEDULED, gang.RUNNING):
            self.group_failures.pop(group, None)
        patch = gang.status_patch(pod_group.status, desired)
        if patch is None:
            return
        await self.kube.patch(gang.pod_group_path(*group) + "/status", {"status": patch}, content_type=MERGE_PATCH)

    def _remember(self, key: Key, result: Result) -> None:
        self.explanations[key] = result
        self.explanations.move_to_end(key)
        while len(self.explanations) > EXPLANATIONS_KEPT:
            self.explanations.popitem(last=False)

    def explain(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The last attempt for a pod, as `kubeplane scheduler explain` will show it."""
        result = self.explanations.get((namespace, name))
        return result.explain() if result is not None else None

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the binding cycle --------------------------------------------------------------------

    async def bind(self, key: Key, pod: Mapping[str, Any], node: str) -> None:
        namespace, name = key
        uid = helpers.pod_key(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": (pod.get("metadata") or {}).get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.kube.create(_pod_path(namespace, name) + "/binding", body)
        except ApiError as e:
            self.cache.forget(uid)
            metrics.SCHEDULER_BINDING_ERRORS.inc()
            if e.conflict or e.not_found:
                # Bound by someone else (or ourselves, earlier), or gone: nothing left to do.
                logger.info("binding %s/%s to %s: %s; dropping it", namespace, name, node, e)
                return
            logger.warning("binding %s/%s to %s failed: %s; retrying", namespace, name, node, e)
            self.events.warning(pod, "FailedScheduling", truncate_message(f"Binding rejected: {e.message}"))
            self.queue.requeue(key, helpers.pod_priority(pod))
            return
        except Exception as e:
            self.cache.forget(uid)
            metrics.SCHEDULER_BINDING_ERRORS.inc()
            logger.warning("binding %s/%s to %s failed: %r; retrying", namespace, name, node, e)
            self.queue.requeue(key, helpers.pod_priority(pod))
            return
        self.cache.finish_binding(uid)
        created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
        if created is not None:
            metrics.SCHEDULER_E2E_SECONDS.observe(max((now() - created).total_seconds(), 0.0))
        self.events.normal(pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    # --- failures -----------------------------------------------------------------------------

    async def report_failure(self, key: Key, pod: Mapping[str, Any], result: Result) -> None:
        """PodScheduled=False, a FailedScheduling event, and preemption's nomination and victims."""
        namespace, name = key
        message = result.message or result.status.message()
        nominated = result.nominated_node
        if nominated and result.victims:
            try:
                await self._preempt(pod, result)
            except Exception as e:
                # As upstream, a preemption that could not evict nominates nothing; the pod says why.
                logger.warning("preemption for %s/%s failed: %s", namespace, name, e)
                message = f"{message}; preemption failed: {e.message if isinstance(e, ApiError) else e}"
                nominated = None
        try:
            await self._patch_status(pod, message, nominated)
        except ApiError as e:
            if not e.not_found:
                logger.warning("recording the failure of %s/%s: %s", namespace, name, e)
        except Exception:
            logger.exception("recording the failure of %s/%s", namespace, name)
        last = self._last_event.get(key)
        clock = time.monotonic()
        if last is None or last[0] != message or clock - last[1] >= EVENT_REPEAT_SECONDS:
            self._last_event[key] = (message, clock)
            self.events.warning(pod, "FailedScheduling", truncate_message(message))

    async def _patch_status(self, pod: Mapping[str, Any], message: str, nominated: str | None) -> None:
        status = pod.get("status") or {}
        current = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        patch: dict[str, Any] = {}
        if current is None or (current.get("status"), current.get("reason"), current.get("message")) != (
            "False", "Unschedulable", message
        ):
            condition: dict[str, Any] = {
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                "lastProbeTime": None,
            }
            if current is None or current.get("status") != "False":
                condition["lastTransitionTime"] = format_time(now())
            patch["conditions"] = [condition]
        if nominated is not None and nominated != (status.get("nominatedNodeName") or ""):
            patch["nominatedNodeName"] = nominated or None
        if not patch:
            return
        namespace, name = helpers.namespaced_name(pod)
        await self.kube.patch(_pod_path(namespace, name) + "/status", {"status": patch}, content_type=STRATEGIC_PATCH)

    async def _preempt(self, pod: Mapping[str, Any], result: Result) -> None:
        """Evict the victims preemption chose (upstream deletes them; the deletions retry the pod)."""
        namespace, name = helpers.namespaced_name(pod)

        async def evict(victim: Mapping[str, Any]) -> None:
            v_ns, v_name = helpers.namespaced_name(victim)
            uid = (victim.get("metadata") or {}).get("uid")
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
            try:
                await self.kube.delete(_pod_path(v_ns, v_name), body)
            except ApiError as e:
                if e.not_found or e.conflict:
                    return
                raise
            metrics.SCHEDULER_PREEMPTION_VICTIMS.inc()
            self.events.normal(
                victim, "Preempted", f"Preempted by pod {(pod.get('metadata') or {}).get('uid')} on node "
                f"{result.nominated_node}",
            )

        logger.info("%s/%s preempts %d pod(s) on %s", namespace, name, len(result.victims), result.nominated_node)
        await asyncio.gather(*(evict(v) for v in result.victims))


# --- wiring ---------------------------------------------------------------------------------

_scheduler: Scheduler | None = None


def _informers(kube: Kube, pods: PodViews, nodes: ByName, namespaces: ByName) -> list[Informer]:
    """Pods, nodes and namespaces come from raw informers; each event updates the views first,
    then tells the scheduler (which enqueues and marks cache entries dirty)."""

    def on_pod(kind: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        pods.apply(kind, pod, old)
        if _scheduler is not None:
            _scheduler.on_pod_event(kind, pod)

    def on_node(kind: str, node: dict[str, Any], old: dict[str, Any] | None) -> None:
        # Heartbeats never get here: trim_node drops the conditions, and the informer does not
        # tell changes its transform hides. So a node's NodeInfo and its remembered verdicts
        # survive them; on a thousand nodes heartbeats alone are dozens of events a second.
        nodes.apply(kind, node, old)
        if _scheduler is not None:
            _scheduler.on_node_event(kind, node)

    return [
        Informer(kube, "/api/v1/pods", on_pod, transform=trim.trim_pod, name="pods"),
        Informer(kube, "/api/v1/nodes", on_node, transform=trim.trim_node, name="nodes"),
        Informer(kube, "/api/v1/namespaces", namespaces.apply, name="namespaces"),
    ]


async def _synced(informers: list[Informer], scheduler: Scheduler) -> None:
    await asyncio.gather(*(i.synced.wait() for i in informers))
    logger.info("scheduler caches synced: %s", ", ".join(f"{len(i.store)} {i.name}" for i in informers))
    # The caches are the bulk of the heap and live as long as the process: keep the cyclic
    # garbage collector from walking them again and again (each full pass grows with them),
    # and let it run less often, as a cycle allocates thousands of short-lived objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    scheduler.synced.set()


@kopf.index(gang.GROUP, gang.VERSION, gang.PLURAL)
async def scheduler_pod_groups(body: kopf.Body, **_: Any) -> dict[gang.GroupKey, dict[str, Any]]:
    return {(body.metadata.namespace or "", body.metadata.name or ""): gang.trim_pod_group(body)}


@kopf.on.startup()
async def start_scheduler(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    global _scheduler
    configure_common(settings)
    logging.getLogger("operators").setLevel(logging.INFO)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kube = await Kube.connect(pool_size=192)  # bindings, and up to EVENT_POSTS_IN_FLIGHT event posts
    elector = elector_for(kube, SCHEDULER_NAME)
    pods = PodViews(is_pending_for_us)
    nodes = ByName()
    namespaces = ByName(lambda ns: dict((ns.get("metadata") or {}).get("labels") or {}))
    _scheduler = Scheduler(
        kube,
        nodes=nodes,
        pods_by_node=pods.by_node,
        nominated=pods.nominated,
        pending=pods.pending,
        namespaces=namespaces,
        leader=elector,
        pod_groups=kwargs.get("scheduler_pod_groups"),
        group_members=pods.group_members,
    )
    informers = _informers(kube, pods, nodes, namespaces)
    _scheduler.start([
        *(asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers),
        asyncio.create_task(_synced(informers, _scheduler), name="informers synced"),
    ])


@kopf.on.cleanup()
async def stop_scheduler(**_: Any) -> None:
    if _scheduler is not None:
        await _scheduler.stop()


@kopf.on.event(gang.GROUP, gang.VERSION, gang.PLURAL)
async def scheduler_pod_group_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    assert _scheduler is not None
    _scheduler.on_pod_group_event(type, body)


@kopf.on.event(profiles.GROUP, profiles.VERSION, profiles.PLURAL)
async def scheduler_profile_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    assert _scheduler is not None
    _scheduler.on_profile_event(type, body)
