from operators.core import pods
from tests.unit.factories import NOW, pod


def names(ranked):
    return [p["metadata"]["name"] for p in ranked]


def rank(*candidates):
    """Ranked as a Deployment's ReplicaSet ranks its pods: against related pods (here, themselves)."""
    return names(pods.rank_for_deletion(list(candidates), related=list(candidates), now=NOW))


def test_unassigned_before_assigned():
    assert rank(pod("a", node="n1"), pod("b", node=""))[0] == "b"


def test_pending_before_unknown_before_running():
    got = rank(pod("run", node="n", phase="Running"), pod("unk", node="n", phase="Unknown"),
               pod("pend", node="n", phase="Pending"))
    assert got == ["pend", "unk", "run"]


def test_not_ready_before_ready():
    assert rank(pod("ready", node="n"), pod("notready", node="n", ready=False))[0] == "notready"


def test_lower_deletion_cost_first():
    assert rank(pod("dear", node="n", cost=100), pod("cheap", node="n", cost=-5))[0] == "cheap"


def test_unparsable_deletion_cost_counts_as_zero():
    assert pods.deletion_cost(pod("x", cost=None)) == 0
    bad = pod("y")
    bad["metadata"]["annotations"] = {pods.DELETION_COST_ANNOTATION: "lots"}
    assert pods.deletion_cost(bad) == 0


def test_doubled_up_node_first():
    got = rank(pod("alone", node="n1"), pod("pair1", node="n2"), pod("pair2", node="n2"))
    assert got[-1] == "alone"


def test_ready_for_less_time_first_on_log_scale():
    # 10 s vs 1000 s ready fall in different power-of-two buckets: the younger goes first.
    assert rank(pod("old", node="n", ready_for=1000), pod("young", node="n", ready_for=10))[0] == "young"


def test_same_log_bucket_breaks_tie_by_uid():
    # 1000 s and 1001 s share a bucket: upstream falls back to UID order.
    got = rank(pod("p1", node="n", ready_for=1000, uid="b"), pod("p2", node="n", ready_for=1001, uid="a"))
    assert got == ["p2", "p1"]


def test_more_restarts_first():
    got = rank(pod("calm", node="n", restarts=0, ready=False), pod("flappy", node="n", restarts=7, ready=False))
    assert got[0] == "flappy"


def test_newer_first_when_all_else_equal():
    got = rank(pod("old", node="n", ready=False, created_ago=5000),
               pod("new", node="n", ready=False, created_ago=10))
    assert got == ["new", "old"]


def test_active_excludes_finished_and_terminating():
    assert pods.is_active(pod("a"))
    assert not pods.is_active(pod("b", phase="Succeeded"))
    assert not pods.is_active(pod("c", phase="Failed"))
    assert not pods.is_active(pod("d", deleting=True))


def test_available_needs_more_than_min_ready_seconds():
    p = pod("a", ready_for=5)
    assert pods.is_available(p, 0, NOW)
    assert pods.is_available(p, 4, NOW)
    assert not pods.is_available(p, 5, NOW)  # IsPodAvailable: LastTransitionTime + minReady strictly Before(now)
    assert not pods.is_available(p, 6, NOW)
    assert not pods.is_available(pod("b", ready=False), 0, NOW)


def test_a_bare_replicaset_has_no_doubled_up_pods():
    # Without related pods (a ReplicaSet no Deployment controls) every rank is 0: node sharing
    # never decides, the newer pod goes first.
    got = names(pods.rank_for_deletion(
        [pod("alone", node="n1", ready=False, created_ago=10), pod("pair1", node="n2", ready=False, created_ago=5000),
         pod("pair2", node="n2", ready=False, created_ago=6000)], related=[], now=NOW))
    assert got == ["alone", "pair1", "pair2"]


def test_terminal_terminating_and_being_deleted():
    assert pods.is_terminal(pod("s", phase="Succeeded")) and pods.is_terminal(pod("f", phase="Failed"))
    assert not pods.is_terminal(pod("r"))
    assert pods.is_terminating(pod("d", deleting=True))
    # IsPodTerminating: a finished pod being deleted is not terminating (its containers are done).
    assert not pods.is_terminating(pod("done", phase="Succeeded", deleting=True))
    assert pods.is_being_deleted(pod("done", phase="Succeeded", deleting=True))
