"""The text kube-scheduler puts in FailedScheduling events and the PodScheduled condition.

FitError.Error() (pkg/scheduler/framework/types.go):

    0/<all nodes> nodes are available: <PreFilter message>. <PostFilter message>
    0/<all nodes> nodes are available: <n reason>, <n reason>. <PostFilter message>

Each node's status contributes each of its reasons once; nodes without an explicit status
contribute the shared "absent" status's reasons. Every reason is printed as "<count> <reason>"
and the strings are sorted as strings, so "10 Insufficient cpu" sorts before "2 ..." exactly as
upstream prints it. When PreFilter rejected the pod only its message is shown (the per-node
entries would repeat it). DefaultPreemption's outcome follows after a space, prefixed
"preemption: " (its own message is a FitError of the dry run, with "Preemption is not helpful
for scheduling" for nodes preemption cannot help), e.g.

    0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available:
    1 Insufficient cpu, 2 No preemption victims found for incoming pod.
"""

from __future__ import annotations

from collections import Counter

from operators.scheduler.status import Diagnosis

NO_NODE_AVAILABLE = "0/{} nodes are available"
NO_NODES_REGISTERED = "no nodes available to schedule pods"
PREEMPTION_PREFIX = "preemption: "
# Events carry at most this many bytes of message (pkg/apis/core/validation NoteLengthLimit).
NOTE_LENGTH_LIMIT = 1024


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    message = NO_NODE_AVAILABLE.format(num_all_nodes) + ":"
    if diagnosis.pre_filter_msg:
        message += f" {diagnosis.pre_filter_msg}."
    else:
        counts: Counter[str] = Counter()
        statuses = diagnosis.node_to_status
        for _, status in statuses.items():
            for reason in status.reasons:
                counts[reason] += 1
        absent = num_all_nodes - len(statuses)
        if absent > 0:
            for reason in statuses.absent.reasons:
                counts[reason] += absent
        histogram = sorted(f"{count} {reason}" for reason, count in counts.items())
        if histogram:
            message += f" {', '.join(histogram)}."
    if diagnosis.post_filter_msg:
        message += f" {diagnosis.post_filter_msg}"
    return message


def truncate_message(message: str, limit: int = NOTE_LENGTH_LIMIT) -> str:
    """As the scheduler trims event messages: at most `limit` bytes, ending in " ..." when cut."""
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    suffix = " ..."
    return encoded[: limit - len(suffix)].decode(errors="ignore") + suffix
