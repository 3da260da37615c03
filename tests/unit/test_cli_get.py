"""`kubeplane get jobs|cronjobs`: kubectl's columns, as facts from k8s.io/kubernetes 1.34's
pkg/printers/internalversion/printers_test.go (TestPrintJob, printCronJob) and apimachinery's
duration_test.go (TestHumanDuration, TestHumanDurationBoundaries)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from operators.cli import get
from operators.cli.main import main
from operators.core.timeutil import format_time
from tests.unit.factories import NOW

H, D = 3600, 86400


@pytest.mark.parametrize(("seconds", "want"), [
    (1, "1s"), (70, "70s"), (190, "3m10s"), (70 * 60, "70m"), (47 * H, "47h"), (49 * H, "2d1h"),
    ((8 * 24 + 2) * H, "8d"), (367 * D, "367d"), (365 * 2 * D + 25 * H, "2y1d"), (365 * 8 * D + 2 * H, "8y"),
    # boundaries
    (-2, "<invalid>"), (-1.999, "0s"), (0, "0s"), (0.999, "0s"), (119.999, "119s"), (120, "2m"), (121, "2m1s"),
    (599.999, "9m59s"), (600, "10m"), (601, "10m"), (3 * H - 0.001, "179m"), (3 * H, "3h"), (3 * H + 60, "3h1m"),
    (8 * H - 0.001, "7h59m"), (8 * H, "8h"), (8 * H + 59 * 60, "8h"), (2 * D - 0.001, "47h"), (2 * D, "2d"),
    (2 * D + H, "2d1h"), (8 * D - 0.001, "7d23h"), (8 * D, "8d"), (8 * D + 23 * H, "8d"),
    (2 * 365 * D - 0.001, "729d"), (2 * 365 * D, "2y"), (2 * 365 * D + 23 * H, "2y"), (2 * 365 * D + D, "2y1d"),
])
def test_human_duration(seconds: float, want: str) -> None:
    assert get.human_duration(seconds) == want


def at(seconds: float) -> str:
    return format_time(NOW + timedelta(seconds=seconds))


def job(name: str = "job1", *, conditions: tuple[str, ...] = (), created: float = 0, **fields: Any) -> dict[str, Any]:
    status = {k: fields.pop(k) for k in ("succeeded", "startTime", "completionTime") if k in fields}
    status["conditions"] = [{"type": t, "status": "True"} for t in conditions]
    meta: dict[str, Any] = {"name": name, "creationTimestamp": at(created)}
    if fields.pop("deleting", False):
        meta["deletionTimestamp"] = at(0)
    return {"metadata": meta, "spec": {"template": {"spec": {"containers": []}}, **fields}, "status": status}


@pytest.mark.parametrize(("j", "want"), [
    (job(completions=2, succeeded=1), ["job1", "Running", "1/2", "", "0s"]),
    (job("job2", created=-10 * 365 * D - 3 * D), ["job2", "Running", "0/1", "", "10y"]),
    (job("job3", created=-10 * 365 * D - 3 * D, startTime=at(60), completionTime=at(31 * 60)),
     ["job3", "Running", "0/1", "30m", "10y"]),
    (job("job4", created=-10 * 365 * D - 3 * D, startTime=at(-20 * 60)), ["job4", "Running", "0/1", "20m", "10y"]),
    (job("job5", conditions=("Complete",)), ["job5", "Complete", "0/1", "", "0s"]),
    (job("job6", conditions=("Failed",)), ["job6", "Failed", "0/1", "", "0s"]),
    (job("job7", conditions=("Suspended",)), ["job7", "Suspended", "0/1", "", "0s"]),
    (job("job8", conditions=("FailureTarget",)), ["job8", "FailureTarget", "0/1", "", "0s"]),
    (job("job9", deleting=True), ["job9", "Terminating", "0/1", "", "0s"]),
    (job("job10", conditions=("SuccessCriteriaMet",)), ["job10", "SuccessCriteriaMet", "0/1", "", "0s"]),
    # The order kubectl decides in: Complete over SuccessCriteriaMet, Failed over FailureTarget and deletion.
    (job(conditions=("SuccessCriteriaMet", "Complete")), ["job1", "Complete", "0/1", "", "0s"]),
    (job(conditions=("FailureTarget", "Failed"), deleting=True), ["job1", "Failed", "0/1", "", "0s"]),
    (job(parallelism=3, succeeded=1), ["job1", "Running", "1/1 of 3", "", "0s"]),
])
def test_job_row_as_print_job(j: dict[str, Any], want: list[str]) -> None:
    assert get.job_row(j, NOW) == want


def test_job_row_wide() -> None:
    j = job(completions=2, succeeded=1, selector={"matchLabels": {"job-label": "job-label-value"}})
    j["spec"]["template"]["spec"]["containers"] = [{"name": "fake-job-container1", "image": "fake-job-image1"},
                                                   {"name": "fake-job-container2", "image": "fake-job-image2"}]
    assert get.job_row(j, NOW, wide=True) == [
        "job1", "Running", "1/2", "", "0s", "fake-job-container1,fake-job-container2",
        "fake-job-image1,fake-job-image2", "job-label=job-label-value"]


def test_cronjob_row_as_print_cron_job() -> None:
    cj: dict[str, Any] = {"metadata": {"name": "cj1", "creationTimestamp": at(-90)},
                          "spec": {"schedule": "*/5 * * * ?", "suspend": False,
                                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                                       {"name": "c", "image": "busybox"}]}}}}},
                          "status": {"lastScheduleTime": at(-30), "active": [{"name": "a"}, {"name": "b"}]}}
    assert get.cronjob_row(cj, NOW) == ["cj1", "*/5 * * * ?", "<none>", "False", "2", "30s", "90s"]
    cj["spec"] |= {"timeZone": "Europe/Paris"}
    del cj["spec"]["suspend"], cj["status"]["lastScheduleTime"]
    assert get.cronjob_row(cj, NOW, wide=True) == ["cj1", "*/5 * * * ?", "Europe/Paris", "<unset>", "2", "<none>",
                                                   "90s", "c", "busybox", "<none>"]


def test_table_pads_like_kubectls_tab_writer() -> None:
    """Minimum width 10 and padding 3; the last column is not padded."""
    assert get.table(["NAME", "STATUS", "AGE"], [["a-long-job-name", "Complete", "5s"]]).splitlines() == [
        "NAME              STATUS     AGE",
        "a-long-job-name   Complete   5s",
    ]


def test_an_unknown_kind_is_refused() -> None:
    out = CliRunner().invoke(main, ["get", "pods"])
    assert out.exit_code == 2 and "jobs|cronjobs" in out.output
