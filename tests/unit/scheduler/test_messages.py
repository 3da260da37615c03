from operators.scheduler.messages import fit_error_message, truncate_message
from operators.scheduler.status import Code, Diagnosis, NodeToStatus, Status


def diagnosis(statuses, absent=None, pre_filter="", post_filter=""):
    return Diagnosis(NodeToStatus(statuses, absent), pre_filter_msg=pre_filter, post_filter_msg=post_filter)


def unsched(*reasons):
    return Status(Code.UNSCHEDULABLE, list(reasons))


# The cases of upstream's TestFitError_Error (framework/types_test.go).


def test_prefilter_message_replaces_per_node_reasons():
    d = diagnosis(
        {n: unsched("Node(s) failed PreFilter plugin FalsePreFilter") for n in ("node1", "node2", "node3")},
        pre_filter="Node(s) failed PreFilter plugin FalsePreFilter",
    )
    assert fit_error_message(3, d) == "0/3 nodes are available: Node(s) failed PreFilter plugin FalsePreFilter."


def test_prefilter_and_postfilter_messages():
    d = diagnosis(
        {n: unsched("Node(s) failed PreFilter plugin FalsePreFilter") for n in ("node1", "node2", "node3")},
        pre_filter="Node(s) failed PreFilter plugin FalsePreFilter",
        post_filter="Error running PostFilter plugin FailedPostFilter",
    )
    assert fit_error_message(3, d) == (
        "0/3 nodes are available: Node(s) failed PreFilter plugin FalsePreFilter. "
        "Error running PostFilter plugin FailedPostFilter"
    )


def test_one_filter_reason_counted():
    d = diagnosis({n: unsched("Node(s) failed Filter plugin FalseFilter-1") for n in ("node1", "node2", "node3")})
    assert fit_error_message(3, d) == "0/3 nodes are available: 3 Node(s) failed Filter plugin FalseFilter-1."


def test_two_filter_reasons_sorted_with_postfilter():
    d = diagnosis(
        {
            "node1": unsched("Node(s) failed Filter plugin FalseFilter-1"),
            "node2": unsched("Node(s) failed Filter plugin FalseFilter-1"),
            "node3": unsched("Node(s) failed Filter plugin FalseFilter-2"),
        },
        post_filter="Error running PostFilter plugin FailedPostFilter",
    )
    assert fit_error_message(3, d) == (
        "0/3 nodes are available: 1 Node(s) failed Filter plugin FalseFilter-2, "
        "2 Node(s) failed Filter plugin FalseFilter-1. Error running PostFilter plugin FailedPostFilter"
    )


def test_every_reason_of_a_node_counts():
    d = diagnosis({"a": unsched("Insufficient cpu", "Insufficient memory"), "b": unsched("Insufficient cpu")})
    assert fit_error_message(2, d) == "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."


def test_counts_sort_as_strings_like_upstream():
    statuses = {f"n{i}": unsched("Insufficient cpu") for i in range(10)}
    statuses.update(
        {f"t{i}": Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ["node(s) had untolerated taint(s)"]) for i in range(2)}
    )
    assert fit_error_message(12, diagnosis(statuses)) == (
        "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) had untolerated taint(s)."
    )


def test_absent_nodes_take_the_absent_status_reasons():
    absent = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ["node(s) didn't satisfy plugin(s) [NodeAffinity]"])
    d = diagnosis(
        {"node1": Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ["node(s) didn't match Pod's node affinity/selector"])},
        absent,
    )
    assert fit_error_message(5, d) == (
        "0/5 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "4 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    )


def test_default_absent_status_has_no_reason():
    assert (
        fit_error_message(3, diagnosis({"a": unsched("Too many pods")})) == "0/3 nodes are available: 1 Too many pods."
    )


def test_no_reasons_at_all():
    assert fit_error_message(0, diagnosis({})) == "0/0 nodes are available:"


def test_preemption_suffix_from_upstream_postfilter_test():
    d = diagnosis(
        {n: unsched("Insufficient cpu") for n in ("node1", "node2")},
        post_filter="preemption: 0/2 nodes are available: 2 Insufficient cpu.",
    )
    assert fit_error_message(2, d) == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 Insufficient cpu."
    )


def test_truncate_message():
    assert truncate_message("short") == "short"
    long = "x" * 2000
    cut = truncate_message(long)
    assert len(cut) == 1024 and cut.endswith(" ...") and cut.startswith("xxx")
    assert truncate_message("x" * 1024) == "x" * 1024
