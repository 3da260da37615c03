from operators.controllers.common.expectations import Expectations


def test_settle_on_observation():
    exp = Expectations()
    exp.expect_creations("uid", 2)
    assert not exp.satisfied("uid")
    exp.created("uid", "p1")
    exp.created("uid", "p2")
    exp.observe("uid", seen={"p1"}, active={"p1"})
    assert not exp.satisfied("uid")
    exp.creation_observed("uid", "p2")  # created and already deleted before the cache listed it
    assert exp.satisfied("uid")
    exp.expect_deletions("uid", ["p1"])
    exp.observe("uid", seen={"p1"}, active={"p1"})
    assert not exp.satisfied("uid")
    exp.observe("uid", seen={"p1"}, active=set())  # terminating
    assert exp.satisfied("uid")


def test_expire():
    exp = Expectations(timeout=0.0)
    exp.expect_creations("uid", 1)
    assert exp.satisfied("uid")


def test_failed_and_skipped_creates_are_not_expected():
    exp = Expectations()
    exp.expect_creations("uid", 7)
    exp.creation_failed("uid")
    assert exp.pending("uid") == (6, 0)
    exp.creation_failed("uid", 6)  # the batches never attempted
    assert exp.satisfied("uid")


def test_keyed_by_owner_uid_and_forgotten():
    exp = Expectations()
    exp.expect_creations("old-uid", 1)
    assert exp.satisfied("new-uid")  # a set recreated under the same name starts afresh
    exp.forget("old-uid")
    assert exp.satisfied("old-uid")


def test_a_failed_delete_is_not_awaited():
    exp = Expectations()
    exp.expect_deletions("uid", ["a", "b"])
    exp.deletion_observed("uid", "a")
    assert not exp.satisfied("uid")
    exp.deletion_observed("uid", "b")
    assert exp.satisfied("uid")
