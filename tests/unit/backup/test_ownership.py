from operators.backup.ownership import ItemKey, OwnerIndex, Relinker, creation_waves, item_key
from tests.unit.backup.objects import obj, owner_ref

DEPLOY = obj("Deployment", "web", "shop", api_version="apps/v1", uid="d-old")
RS = obj("ReplicaSet", "web-abc", "shop", api_version="apps/v1", uid="rs-old",
         owners=[owner_ref("Deployment", "web", "d-old", api_version="apps/v1")])
POD = obj("Pod", "web-abc-1", "shop", uid="p-old", owners=[owner_ref("ReplicaSet", "web-abc", "rs-old",
                                                                     api_version="apps/v1")])
WIDGET = obj("Widget", "w", "shop", api_version="example.kubeplane.dev/v1", uid="w-old")
CM = obj("ConfigMap", "w-config", "shop", uid="cm-old", owners=[
    owner_ref("Widget", "w", "w-old", api_version="example.kubeplane.dev/v1"),
    owner_ref("Deployment", "web", "d-old", api_version="apps/v1", controller=False),
    owner_ref("Gone", "ghost", "ghost-uid", controller=False),
])
ITEMS = [("deployments.apps", DEPLOY), ("replicasets.apps", RS), ("pods", POD),
         ("widgets.example.kubeplane.dev", WIDGET), ("configmaps", CM)]
INDEX = OwnerIndex.build((item_key(gr, o), o) for gr, o in ITEMS)
K = {o["metadata"]["name"]: item_key(gr, o) for gr, o in ITEMS}


def test_owners_are_found_by_uid_kind_name_and_scope():
    assert INDEX.owners_of(K["web-abc-1"]) == [K["web-abc"]]
    assert INDEX.owners_of(K["w-config"]) == [K["w"], K["web"]]
    assert INDEX.owners_of(K["web"]) == []
    wrong_kind = owner_ref("StatefulSet", "web", "d-old")
    assert INDEX.owner_in_backup(K["web-abc"], wrong_kind) is None
    other_namespace = ItemKey("configmaps", "elsewhere", "c")
    assert INDEX.owner_in_backup(other_namespace, owner_ref("Deployment", "web", "d-old")) is None


def test_cluster_scoped_owner_of_namespaced_dependent_is_allowed():
    crd_owner = obj("ClusterIssuer", "ca", api_version="example/v1", uid="ci")
    secret = obj("Secret", "ca-key", "certs", uid="s", owners=[owner_ref("ClusterIssuer", "ca", "ci")])
    index = OwnerIndex.build([(item_key("clusterissuers.example", crd_owner), crd_owner),
                              (item_key("secrets", secret), secret)])
    assert index.owners_of(item_key("secrets", secret)) == [item_key("clusterissuers.example", crd_owner)]


def test_creation_waves_put_owners_first():
    waves = creation_waves([K["web-abc-1"], K["w-config"], K["web-abc"], K["web"], K["w"]], INDEX)
    position = {key: i for i, wave in enumerate(waves) for key in wave}
    assert position[K["web"]] < position[K["web-abc"]] < position[K["web-abc-1"]]
    assert position[K["w"]] < position[K["w-config"]] and position[K["web"]] < position[K["w-config"]]
    assert waves[0] == sorted([K["web"], K["w"]])
    # Owners outside the tier do not hold anything back.
    assert creation_waves([K["web-abc-1"], K["w-config"]], INDEX) == [sorted([K["web-abc-1"], K["w-config"]])]


def test_creation_waves_with_a_cycle_still_place_everyone():
    a = obj("Thing", "a", "n", uid="a", owners=[owner_ref("Thing", "b", "b")])
    b = obj("Thing", "b", "n", uid="b", owners=[owner_ref("Thing", "a", "a")])
    c = obj("Thing", "c", "n", uid="c")
    index = OwnerIndex.build([(item_key("things.x", o), o) for o in (a, b, c)])
    waves = creation_waves([item_key("things.x", o) for o in (a, b, c)], index)
    assert waves == [[item_key("things.x", c)], sorted([item_key("things.x", a), item_key("things.x", b)])]


def test_owner_created_first_gives_rewritten_references_at_create():
    relinker = Relinker(INDEX)
    refs, warnings = relinker.references_for_create(K["web"], [])
    assert refs == [] and warnings == []
    assert relinker.created(K["web"], "d-old", "d-new") == []
    refs, warnings = relinker.references_for_create(K["web-abc"], RS["metadata"]["ownerReferences"])
    assert refs == [owner_ref("Deployment", "web", "d-new", api_version="apps/v1")] and warnings == []
    assert relinker.created(K["web-abc"], "rs-old", "rs-new") == []
    assert relinker.finish() == []


def test_dependent_in_an_earlier_tier_is_patched_once_its_owner_exists():
    # Velero's order restores pods before replicasets: the pod goes first, without the reference.
    relinker = Relinker(INDEX)
    refs, warnings = relinker.references_for_create(K["web-abc-1"], POD["metadata"]["ownerReferences"])
    assert refs == [] and warnings == []
    assert relinker.created(K["web-abc-1"], "p-old", "p-new") == []
    relinker.references_for_create(K["web"], [])
    relinker.created(K["web"], "d-old", "d-new")
    relinker.references_for_create(K["web-abc"], RS["metadata"]["ownerReferences"])
    patches = relinker.created(K["web-abc"], "rs-old", "rs-new")
    assert len(patches) == 1
    patch = patches[0]
    assert patch.key == K["web-abc-1"] and patch.uid == "p-new"
    assert patch.patch == {"metadata": {"uid": "p-new", "ownerReferences": [
        owner_ref("ReplicaSet", "web-abc", "rs-new", api_version="apps/v1")]}}
    assert relinker.uid_map == {"p-old": "p-new", "d-old": "d-new", "rs-old": "rs-new"}
    assert relinker.finish() == []


def test_references_outside_the_backup_or_restore_are_dropped_with_warnings():
    relinker = Relinker(INDEX, planned=[K["w"], K["w-config"]])
    relinker.created(K["w"], "w-old", "w-new")
    refs, warnings = relinker.references_for_create(K["w-config"], CM["metadata"]["ownerReferences"])
    assert refs == [owner_ref("Widget", "w", "w-new", api_version="example.kubeplane.dev/v1")]
    assert len(warnings) == 2
    assert any("Deployment web" in w and "not restored" in w for w in warnings)
    assert any("Gone ghost" in w and "not in the backup" in w for w in warnings)


def test_partial_references_grow_by_patches_and_failed_owners_are_reported():
    relinker = Relinker(INDEX)
    refs, warnings = relinker.references_for_create(K["w-config"], CM["metadata"]["ownerReferences"])
    assert refs == [] and len(warnings) == 1  # only the ghost is dropped now
    relinker.created(K["w-config"], "cm-old", "cm-new")
    patches = relinker.created(K["w"], "w-old", "w-new")
    assert [p.patch["metadata"]["ownerReferences"] for p in patches] == [
        [owner_ref("Widget", "w", "w-new", api_version="example.kubeplane.dev/v1")]]
    relinker.failed(K["web"], "d-old")
    leftover = relinker.finish()
    assert len(leftover) == 1 and "Deployment web" in leftover[0] and "configmaps shop/w-config" in leftover[0]


def test_owner_failed_before_dependent_is_created():
    relinker = Relinker(INDEX)
    relinker.failed(K["web-abc"], "rs-old")
    refs, warnings = relinker.references_for_create(K["web-abc-1"], POD["metadata"]["ownerReferences"])
    assert refs == [] and "was not restored" in warnings[0]
    assert relinker.finish() == []


def test_dependent_that_failed_is_not_patched():
    relinker = Relinker(INDEX)
    relinker.references_for_create(K["web-abc-1"], POD["metadata"]["ownerReferences"])
    relinker.failed(K["web-abc-1"], "p-old")
    assert relinker.created(K["web-abc"], "rs-old", "rs-new") == []
    assert relinker.finish() == []


def test_owner_found_existing_counts_as_created():
    relinker = Relinker(INDEX)
    relinker.created(K["web-abc"], "rs-old", "rs-live")  # AlreadyExists: the live object's uid
    refs, _ = relinker.references_for_create(K["web-abc-1"], POD["metadata"]["ownerReferences"])
    assert refs[0]["uid"] == "rs-live"


def test_owner_created_while_its_dependents_create_is_in_flight_is_linked_by_a_patch():
    # M1: one tier creates concurrently. D's references are computed before O's create returns, O's
    # `created` comes first, then D's: D must still get a patch with O's new uid.
    relinker = Relinker(INDEX)
    refs, _ = relinker.references_for_create(K["web-abc"], RS["metadata"]["ownerReferences"])
    relinker.references_for_create(K["web"], [])
    assert refs == []
    assert relinker.created(K["web"], "d-old", "d-new") == []  # D not created yet: nothing to patch
    [patch] = relinker.created(K["web-abc"], "rs-old", "rs-new")
    assert patch.key == K["web-abc"] and patch.patch == {"metadata": {"uid": "rs-new", "ownerReferences": [
        owner_ref("Deployment", "web", "d-new", api_version="apps/v1")]}}
    assert relinker.finish() == []


def test_a_dependent_created_with_all_its_references_gets_no_patch():
    relinker = Relinker(INDEX)
    relinker.references_for_create(K["web"], [])
    relinker.created(K["web"], "d-old", "d-new")
    relinker.references_for_create(K["web-abc"], RS["metadata"]["ownerReferences"])
    assert relinker.created(K["web-abc"], "rs-old", "rs-new") == []
