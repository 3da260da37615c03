"""A Schedule whose slot's Backup name is taken by a Backup it did not create (reliability issue,
H2): the slot is reported (a Warning event) and counted as skipped, never as backed up. Its own
earlier attempt of the same slot (a 409 on retry) still counts as done."""

from __future__ import annotations

from typing import Any

import pytest

from operators.backup import naming
from operators.backup import operator as backup_operator
from operators.core.kube import ApiError


class FakeKube:
    def __init__(self, existing_labels: dict[str, str]) -> None:
        self.existing_labels = existing_labels
        self.patches: list[tuple[str, Any]] = []

    async def get(self, path: str, **_: Any) -> Any:
        if "/schedules/" in path:
            return {"apiVersion": "backup.kubeplane.dev/v1alpha1", "kind": "Schedule",
                    "metadata": {"name": "daily", "namespace": "kubeplane-system", "uid": "s",
                                 "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "spec": {"schedule": "@every 1h", "template": {}}, "status": {"phase": "Enabled"}}
        return {"metadata": {"name": path.rsplit("/", 1)[1], "labels": self.existing_labels}}

    async def list_all(self, path: str, **_: Any) -> list[Any]:
        return []

    async def create(self, path: str, body: Any) -> Any:
        raise ApiError(409, {"reason": "AlreadyExists", "message": "already exists"})

    async def patch(self, path: str, body: Any, **_: Any) -> Any:
        self.patches.append((path, body))
        return {}


def events(op: Any) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in list(op.events._queue._queue)]


@pytest.mark.parametrize(("labels", "skipped"), [({}, True), ({naming.SCHEDULE_NAME_LABEL: "daily"}, False)],
                         ids=["someone-elses", "our-earlier-attempt"])
async def test_a_taken_name_skips_the_slot_and_says_so(labels: dict[str, str], skipped: bool) -> None:
    kube = FakeKube(labels)
    op = backup_operator.BackupOperator(kube)  # type: ignore[arg-type]
    await op.sync_schedule("daily")
    statuses = [body["status"] for path, body in kube.patches if path.endswith("/schedules/daily/status")]
    assert any("lastSkipped" in s for s in statuses) is skipped
    assert any("lastBackup" in s for s in statuses) is not skipped
    reasons = [reason for reason, _ in events(op)]
    assert ("BackupNameTaken" in reasons) is skipped
    assert ("BackupCreated" in reasons) is not skipped
