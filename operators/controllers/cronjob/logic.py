"""The CronJob's decisions: one pure function from what a sync observed to what it should do.

Mirrors pkg/controller/cronjob (cronjob_controllerv2.go, utils.go) for Kubernetes 1.34:

- the Jobs a CronJob controls are reconciled with status.active first: a finished one leaves the
  list (SawCompletedJob) and moves lastSuccessfulTime up to its completionTime; an unfinished one
  the list does not hold is reported (UnexpectedJob); a listed one that is neither cached nor found
  by a live GET is dropped (MissingJob). Finished Jobs beyond successfulJobsHistoryLimit (3) and
  failedJobsHistoryLimit (1) are deleted, oldest start first;
- the schedule is `spec.schedule` read by robfig/cron v3 (operators/core/cron.py, shared with the
  backup Schedule), with `TZ=<spec.timeZone>` in front; a bad time zone (UnknownTimeZone), schedule
  (UnparseableSchedule) or a schedule that never fires (InvalidSchedule) stops the CronJob there,
  as a Warning Event;
- a run is due at the newest scheduled time after lastScheduleTime (or creation) that is not later
  than now (mostRecentScheduleTime; more than 100 missed times warns TooManyMissedTimes and still
  runs the newest); with startingDeadlineSeconds a time older than the deadline is missed
  (MissSchedule) and never run; Forbid waits while a Job is active (JobAlreadyActive), Replace
  deletes the active Jobs first; a suspended CronJob starts nothing;
- the run is a Job named `<cronjob>-<scheduled unix minutes>` with the template's labels and
  annotations, the scheduled-timestamp annotation (in spec.timeZone) and the CronJob as controller:
  the name makes a second create of the same run fail with AlreadyExists, so a restart never
  starts it twice; lastScheduleTime records it;
- the sync is requeued 100 ms after the next scheduled time.

Beyond upstream (status only; the spec is batch/v1's): status.nextScheduleTime, status.lastMissedTime,
and the conditions ScheduleValid and MissedSchedule, so a schedule that cannot run or a run that did
not happen shows in `kubectl get` and `kubectl describe`, not only in Events that expire.

`plan(observed)` returns a `Plan`; the controller carries it out, then `record_run` adds the Job it
created (or found already created by itself) to the status.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from operators.core import conditions, cron
from operators.core.apis import Resource
from operators.core.events import Event
from operators.core.owners import owner_reference
from operators.core.timeutil import format_time, parse_time

Obj = Mapping[str, Any]

NEXT_SCHEDULE_DELTA = 0.1  # nextScheduleDelta: the requeue lands just after the scheduled time
MANY_MISSED = 100
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
DEFAULT_SUCCESSFUL_HISTORY, DEFAULT_FAILED_HISTORY = 3, 1
ALLOW, FORBID, REPLACE = "Allow", "Forbid", "Replace"
COMPLETE, FAILED = "Complete", "Failed"

# batch/v1's status fields (a batch/v1 CronJob in drop-in mode gets these only).
UPSTREAM_STATUS = frozenset({"active", "lastScheduleTime", "lastSuccessfulTime"})

# kubeplane's conditions.
SCHEDULE_VALID, MISSED_SCHEDULE = "ScheduleValid", "MissedSchedule"
UNKNOWN_TIME_ZONE, UNPARSEABLE_SCHEDULE, INVALID_SCHEDULE = "UnknownTimeZone", "UnparseableSchedule", "InvalidSchedule"
TOO_MANY_MISSED, MISS_SCHEDULE = "TooManyMissedTimes", "MissSchedule"


class ScheduleError(ValueError):
    """A schedule that parses but cannot be followed (robfig finds no second firing)."""


def normal(reason: str, message: str) -> Event:
    return Event("Normal", reason, message)


def warning(reason: str, message: str) -> Event:
    return Event("Warning", reason, message)


# --- the spec, as batch/v1 defaults it ---------------------------------------------------------------

def spec(cronjob: Obj) -> Obj:
    return cronjob.get("spec") or {}


def status(cronjob: Obj) -> Obj:
    return cronjob.get("status") or {}


def concurrency_policy(cronjob: Obj) -> str:
    return str(spec(cronjob).get("concurrencyPolicy") or ALLOW)


def history_limits(cronjob: Obj) -> tuple[int, int]:
    """(successful, failed): batch/v1 defaults them to 3 and 1."""
    s = spec(cronjob)
    successful, failed = s.get("successfulJobsHistoryLimit"), s.get("failedJobsHistoryLimit")
    return (DEFAULT_SUCCESSFUL_HISTORY if successful is None else int(successful),
            DEFAULT_FAILED_HISTORY if failed is None else int(failed))


def _time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def created(cronjob: Obj) -> datetime:
    return _time(cronjob["metadata"].get("creationTimestamp")) or datetime(1970, 1, 1, tzinfo=UTC)


def last_schedule_time(cronjob: Obj) -> datetime | None:
    return _time(status(cronjob).get("lastScheduleTime"))


# --- the schedule --------------------------------------------------------------------------------------

def schedule_text(cronjob: Obj) -> tuple[str, list[Event]]:
    """formatSchedule: `TZ=<timeZone> <schedule>`; a TZ inside the schedule is used as written, with a
    Warning (batch/v1 refuses it on create since 1.29; kubeplane's CRD refuses it always)."""
    text = str(spec(cronjob).get("schedule") or "")
    if "TZ" in text:
        return text, [warning("UnsupportedSchedule", f"CRON_TZ or TZ used in schedule {_go_quote(text)} is not "
                              "officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/"
                              "cron-jobs/ for more details")]
    zone = spec(cronjob).get("timeZone")
    if zone is not None:
        try:
            cron.zone(str(zone))
        except cron.CronError:
            return text, []
        return f"TZ={zone} {text}", []
    return text, []


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_schedule(cronjob: Obj) -> tuple[cron.Schedule | None, list[Event], Event | None]:
    """The schedule, the Events reading it raised, and the Warning that stops the CronJob (or None):
    UnknownTimeZone, then UnparseableSchedule (syncCronJob's order)."""
    zone = spec(cronjob).get("timeZone")
    if zone is not None:
        try:
            cron.zone(str(zone))
        except cron.CronError as e:
            return None, [], warning(UNKNOWN_TIME_ZONE, f"invalid timeZone: {_go_quote(str(zone))}: {e}")
    text, events = schedule_text(cronjob)
    try:
        return cron.parse_standard(text), events, None
    except cron.CronError as e:
        raw = str(spec(cronjob).get("schedule") or "")
        return None, events, warning(UNPARSEABLE_SCHEDULE, f"unparseable schedule: {_go_quote(raw)} : {e}")


@dataclass(frozen=True)
class Missed:
    """mostRecentScheduleTime's answer: where counting started, the newest time not after now (if
    any), and how many times were missed since (0: none; an estimate from the first interval)."""

    earliest: datetime
    most_recent: datetime | None
    count: int


def _round_seconds(delta: timedelta) -> int:
    micros = delta // timedelta(microseconds=1)
    return (micros + 500_000) // 1_000_000 if micros >= 0 else -((-micros + 500_000) // 1_000_000)


def most_recent_schedule_time(cronjob: Obj, now: datetime, schedule: cron.Schedule,
                              include_deadline: bool) -> Missed:
    """mostRecentScheduleTime. Raises ScheduleError when the schedule has no two firings a second or
    more apart (robfig finds none within five years, e.g. "59 23 31 2 *")."""
    earliest = last_schedule_time(cronjob) or created(cronjob)
    deadline = spec(cronjob).get("startingDeadlineSeconds")
    if include_deadline and deadline is not None:
        scheduling_deadline = now - timedelta(seconds=int(deadline))
        if scheduling_deadline > earliest:
            earliest = scheduling_deadline
    t1 = schedule.next(earliest)
    t2 = schedule.next(t1) if t1 is not None else None
    if t1 is not None and now < t1:
        return Missed(earliest, None, 0)
    if t1 is not None and t2 is not None and now < t2:
        return Missed(earliest, t1, 0)
    between = _round_seconds(t2 - t1) if t1 is not None and t2 is not None else 0
    if t1 is None or between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    count = elapsed // between + 1
    potential = t1 + timedelta(seconds=(count - 2) * between)
    newest: datetime | None = None
    t = schedule.next(potential)
    while t is not None and t <= now:
        newest = t
        t = schedule.next(t)
    return Missed(earliest, newest, count)


def previous_firing(schedule: cron.Schedule, newest: datetime, earliest: datetime) -> datetime | None:
    """The scheduled time before `newest` and after `earliest`, if there is one (robfig only counts
    forward: look back over a window that doubles until it holds one or reaches `earliest`)."""
    if newest <= earliest:
        return None
    if isinstance(schedule, cron.ConstantDelay):  # @every: firings at earliest + k * delay
        step = timedelta(microseconds=schedule.delay_ns // 1000)
        k = -(-(newest - earliest) // step) - 1
        return earliest + k * step if k >= 1 else None
    span = timedelta(minutes=1)
    while True:
        start = earliest if newest - earliest <= span else newest - span
        previous: datetime | None = None
        t = schedule.next(start)
        while t is not None and t < newest:
            previous, t = t, schedule.next(t)
        if previous is not None or start == earliest:
            return previous
        span *= 2


def next_schedule_time(cronjob: Obj, now: datetime, schedule: cron.Schedule) -> tuple[datetime | None, Missed]:
    """nextScheduleTime: the time a run is due at (None: none yet), with the count behind it."""
    missed = most_recent_schedule_time(cronjob, now, schedule, True)
    if missed.most_recent is None or missed.most_recent > now:
        return None, missed
    return missed.most_recent, missed


def upcoming(cronjob: Obj, now: datetime, schedule: cron.Schedule) -> datetime | None:
    """The next scheduled time nextScheduleTimeDuration aims at (without the 100 ms)."""
    try:
        missed = most_recent_schedule_time(cronjob, now, schedule, False)
        start = missed.most_recent if missed.most_recent is not None else \
            (missed.earliest if missed.count == 0 else now)
    except ScheduleError:
        start = now
    return schedule.next(start)


def next_schedule_delay(cronjob: Obj, now: datetime, schedule: cron.Schedule) -> float | None:
    """nextScheduleTimeDuration: seconds until 100 ms after the next scheduled time (None: it never fires)."""
    at = upcoming(cronjob, now, schedule)
    if at is None:
        return None
    return (at - now).total_seconds() + NEXT_SCHEDULE_DELTA


# --- Jobs ----------------------------------------------------------------------------------------------

def finished_condition(job: Obj) -> str | None:
    """getFinishedStatus: Complete or Failed, whichever is True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in (COMPLETE, FAILED) and condition.get("status") == "True":
            return str(condition["type"])
    return None


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    """getJobName: `<cronjob>-<scheduled time in unix minutes>`."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def rfc3339(when: datetime, zone_name: str = "") -> str:
    """Go's time.Format(time.RFC3339) of `when` in the zone: "Z" for a zero offset."""
    local = when.astimezone(cron.zone(zone_name))
    offset = local.utcoffset() or timedelta(0)
    if not offset:
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def job_from_template(cronjob: Obj, scheduled: datetime, owner: Resource, jobs: Resource,
                      ) -> dict[str, Any]:
    """getJobFromTemplate2: the template's labels and annotations, the scheduled-timestamp annotation
    (RFC 3339 in spec.timeZone, UTC without one), the CronJob as controller, the template's spec."""
    template = spec(cronjob).get("jobTemplate") or {}
    meta = template.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = rfc3339(scheduled, str(spec(cronjob).get("timeZone") or ""))
    return {
        "apiVersion": jobs.api_version, "kind": jobs.kind,
        "metadata": {
            "name": job_name(cronjob, scheduled),
            "namespace": cronjob["metadata"]["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference(cronjob, owner)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def job_reference(job: Obj) -> dict[str, Any]:
    """getRef: the ObjectReference status.active holds."""
    meta = job["metadata"]
    ref = {"apiVersion": job.get("apiVersion"), "kind": job.get("kind"), "name": meta["name"],
           "namespace": meta.get("namespace"), "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


def start_order(job: Obj) -> tuple[int, str, str]:
    """byJobStartTime: by status.startTime, Jobs without one last, names breaking ties."""
    started = _time((job.get("status") or {}).get("startTime"))
    return (0 if started else 1, format_time(started) if started else "", job["metadata"]["name"])


# --- the plan ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    cronjob: Obj
    jobs: Sequence[Obj]  # the Jobs the CronJob controls (the cache)
    now: datetime
    gone: frozenset[str] = frozenset()  # uids in status.active a live GET did not find


@dataclass(frozen=True)
class Run:
    scheduled: datetime
    name: str  # the Job's name: `job_from_template` makes its body


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]  # the status before a run is recorded (see `record_run`)
    cleanup: tuple[Obj, ...] = ()  # finished Jobs beyond the history limits, oldest first
    replace: tuple[Mapping[str, Any], ...] = ()  # active Jobs (references) to delete before the run
    run: Run | None = None
    events: tuple[Event, ...] = ()
    requeue: float | None = None


def _remove_active(active: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [ref for ref in active if ref.get("uid") != uid]


def _history(cronjob: Obj, jobs: Sequence[Obj]) -> list[Obj]:
    """cleanupFinishedJobs: the finished Jobs past each history limit, oldest first per kind."""
    successful_limit, failed_limit = history_limits(cronjob)
    by_kind: dict[str, list[Obj]] = {COMPLETE: [], FAILED: []}
    for job in jobs:
        finished = finished_condition(job)
        if finished is not None:
            by_kind[finished].append(job)
    doomed: list[Obj] = []
    for kind, limit in ((COMPLETE, successful_limit), (FAILED, failed_limit)):
        finished_jobs = sorted(by_kind[kind], key=start_order)
        doomed.extend(finished_jobs[:max(0, len(finished_jobs) - limit)])
    return doomed


def _set(new: dict[str, Any], type_: str, state: str, reason: str, message: str, now: datetime) -> None:
    new["conditions"] = conditions.set_condition(new.get("conditions"), type_, state, reason, message, now)


def plan(observed: Observed) -> Plan:
    cronjob, now = observed.cronjob, observed.now
    old = status(cronjob)
    new: dict[str, Any] = copy.deepcopy(dict(old))
    active: list[dict[str, Any]] = [dict(ref) for ref in old.get("active") or []]
    events: list[Event] = []

    # History first, as the sync does: a deleted Job leaves the active list with it.
    cleanup = tuple(_history(cronjob, observed.jobs))
    for job in cleanup:
        active = _remove_active(active, job["metadata"]["uid"])
    listed = {ref.get("uid") for ref in active}

    last_successful = _time(new.get("lastSuccessfulTime"))
    for job in observed.jobs:
        uid, job_name_ = job["metadata"]["uid"], job["metadata"]["name"]
        finished = finished_condition(job)
        if finished is None:
            if uid not in listed:
                events.append(warning("UnexpectedJob",
                                      f"Saw a job that the controller did not create or forgot: {job_name_}"))
            continue
        if uid in listed:
            active = _remove_active(active, uid)
            listed.discard(uid)
            events.append(normal("SawCompletedJob", f"Saw completed job: {job_name_}, condition: {finished}"))
        if finished == COMPLETE:
            completed = _time((job.get("status") or {}).get("completionTime"))
            if completed is not None and (last_successful is None or completed > last_successful):
                last_successful = completed
    if last_successful is not None:
        new["lastSuccessfulTime"] = format_time(last_successful)

    cached = {job["metadata"]["uid"] for job in observed.jobs}
    for ref in list(active):
        if ref.get("uid") not in cached and ref.get("uid") in observed.gone:
            events.append(normal("MissingJob", f"Active job went missing: {ref.get('name')}"))
            active = _remove_active(active, str(ref.get("uid")))

    def done(requeue: float | None = None, **extra: Any) -> Plan:
        if active:
            new["active"] = active
        else:
            new.pop("active", None)
        return Plan(status=new, cleanup=cleanup, events=tuple(events), requeue=requeue, **extra)

    if cronjob["metadata"].get("deletionTimestamp"):
        return done()

    schedule, parse_events, stop = parse_schedule(cronjob)
    events.extend(parse_events)
    if stop is not None:
        events.append(stop)
        _set(new, SCHEDULE_VALID, "False", stop.reason, stop.message, now)
        new.pop("nextScheduleTime", None)
        return done()
    assert schedule is not None

    if spec(cronjob).get("suspend"):
        _set(new, SCHEDULE_VALID, "True", "Valid", "The schedule and time zone are valid.", now)
        new.pop("nextScheduleTime", None)
        return done()

    try:
        scheduled, missed = next_schedule_time(cronjob, now, schedule)
    except ScheduleError as e:
        raw = str(spec(cronjob).get("schedule") or "")
        stop = warning(INVALID_SCHEDULE, f"invalid schedule: {raw} : {e}")
        events.append(stop)
        _set(new, SCHEDULE_VALID, "False", stop.reason, stop.message, now)
        new.pop("nextScheduleTime", None)
        return done()
    _set(new, SCHEDULE_VALID, "True", "Valid", "The schedule and time zone are valid.", now)
    if scheduled is not None and missed.count > MANY_MISSED:
        events.append(warning(TOO_MANY_MISSED, "too many missed start times. Set or decrease "
                                               ".spec.startingDeadlineSeconds or check clock skew"))

    def waiting(ran: datetime | None = None, **extra: Any) -> Plan:
        """The plan, with nextScheduleTime and the requeue aimed at the next scheduled time (counted
        from `ran` when this sync starts a run)."""
        counted = new if ran is None else {**new, "lastScheduleTime": format_time(ran)}
        at = upcoming({**cronjob, "status": counted}, now, schedule)
        if at is None:
            new.pop("nextScheduleTime", None)
        else:
            new["nextScheduleTime"] = format_time(at)
        return done(requeue=None if at is None else (at - now).total_seconds() + NEXT_SCHEDULE_DELTA, **extra)

    if scheduled is None:
        # startingDeadlineSeconds hides the times older than it from the count above: one of them
        # due since the last run was missed, silently upstream.
        late = previous_firing(schedule, now + timedelta(seconds=1), last_schedule_time(cronjob) or created(cronjob))
        recorded = _time(new.get("lastMissedTime"))
        if late is not None and (recorded is None or late > recorded):
            new["lastMissedTime"] = format_time(late)
            _set(new, MISSED_SCHEDULE, "True", "MissedStartingDeadline",
                 f"The run scheduled for {format_time(late)} was not started within startingDeadlineSeconds.", now)
        return waiting()

    deadline = spec(cronjob).get("startingDeadlineSeconds")
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        message = f"Missed scheduled time to start a job: {rfc1123z(scheduled)}"
        events.append(warning(MISS_SCHEDULE, message))
        new["lastMissedTime"] = format_time(scheduled)
        _set(new, MISSED_SCHEDULE, "True", MISS_SCHEDULE, message, now)
        return waiting()

    name = job_name(cronjob, scheduled)
    if any(ref.get("name") == name for ref in active) or last_schedule_time(cronjob) == scheduled:
        return waiting()

    policy = concurrency_policy(cronjob)
    if policy == FORBID and active:
        events.append(normal("JobAlreadyActive",
                             "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return waiting()
    replaced: tuple[Mapping[str, Any], ...] = ()
    if policy == REPLACE:
        replaced = tuple(active)
        active = []

    # The run: recorded in the status once the Job exists (record_run). Times between the last run
    # and this one did not run (the controller was down, or they were older than the deadline).
    skipped = previous_firing(schedule, scheduled, last_schedule_time(cronjob) or created(cronjob))
    if skipped is not None:
        new["lastMissedTime"] = format_time(skipped)
        many = "more than 100" if missed.count > MANY_MISSED else "some"
        _set(new, MISSED_SCHEDULE, "True", TOO_MANY_MISSED if missed.count > MANY_MISSED else "SkippedSchedules",
             f"Scheduled times before {format_time(scheduled)} did not run ({many}, the newest at "
             f"{format_time(skipped)}); only the newest due time runs.", now)
    elif conditions.find(new.get("conditions"), MISSED_SCHEDULE) is not None:
        _set(new, MISSED_SCHEDULE, "False", "OnSchedule",
             f"The run scheduled for {format_time(scheduled)} started.", now)
    return waiting(scheduled, replace=replaced, run=Run(scheduled, name))


def record_run(status_: Mapping[str, Any], job: Obj, scheduled: datetime) -> dict[str, Any]:
    """The status after the run's Job was created (or found created by this CronJob): the Job in
    active (once) and lastScheduleTime."""
    new = copy.deepcopy(dict(status_))
    uid = job["metadata"].get("uid")
    active = [dict(ref) for ref in new.get("active") or [] if ref.get("uid") != uid]
    new["active"] = [*active, job_reference(job)]
    new["lastScheduleTime"] = format_time(scheduled)
    return new


def rfc1123z(when: datetime) -> str:
    """Go's time.RFC1123Z in UTC: "Mon, 02 Jan 2006 15:04:05 -0700"."""
    return when.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
