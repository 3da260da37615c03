from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.backup import selection
from operators.backup.selection import (
    EXCLUDE_LABEL,
    IncludesExcludes,
    Selection,
    glob_match,
    resolve_resource,
    validate_backup_spec,
    validate_restore_spec,
)
from tests.unit.backup.objects import TYPES, namespace, obj, rt, type_of

# A small cluster: three test namespaces (Velero's e2e filtering cases create several namespaces
# with a Deployment, ConfigMap and Secret each), a label on some objects, cluster-scoped items.
CLUSTER: list[tuple[str, dict[str, Any]]] = []
for ns in ("ns-0", "ns-1", "ns-2"):
    CLUSTER += [
        ("deployments.apps", obj("Deployment", "web", ns, api_version="apps/v1",
                                 labels={"resourcefiltering": "true"} if ns != "ns-2" else {})),
        ("configmaps", obj("ConfigMap", "config", ns, labels={"app": "web"})),
        ("secrets", obj("Secret", "creds", ns)),
        ("events", obj("Event", "web.1", ns)),
    ]
CLUSTER += [
    ("configmaps", obj("ConfigMap", "skip-me", "ns-0", labels={EXCLUDE_LABEL: "true"})),
    ("clusterroles.rbac.authorization.k8s.io",
     obj("ClusterRole", "reader", api_version="rbac.authorization.k8s.io/v1")),
    ("persistentvolumes", obj("PersistentVolume", "pv-1")),
    ("nodes", obj("Node", "node-1")),
    ("widgets.example.kubeplane.dev", obj("Widget", "w", "ns-1", api_version="example.kubeplane.dev/v1alpha1")),
    ("backups.backup.kubeplane.dev", obj("Backup", "nightly", "kubeplane-system",
                                         api_version="backup.kubeplane.dev/v1alpha1")),
]
NAMESPACES = [namespace("ns-0", labels={"team": "a"}), namespace("ns-1", labels={"team": "b"}),
              namespace("ns-2"), namespace("kubeplane-system"), namespace("old", phase="Terminating")]


def taken(spec: dict[str, Any], cluster: list[tuple[str, dict[str, Any]]] = CLUSTER) -> set[str]:
    """What a backup with `spec` holds from CLUSTER: items of included types that pass the item
    filters, plus the Namespace objects the namespace tracker keeps."""
    chosen = Selection.from_spec(spec, TYPES)
    out = set()
    item_namespaces = set()
    for gr, item in cluster:
        if chosen.type_included(type_of(gr)) and chosen.item_included(item):
            meta = item["metadata"]
            out.add(f"{gr} {meta.get('namespace', '')}/{meta['name']}")
            item_namespaces.add(meta.get("namespace", ""))
    if chosen.type_included(type_of("namespaces")):
        out |= {f"namespaces /{n}" for n in chosen.select_namespaces(NAMESPACES, item_namespaces)}
    return out


# --- Velero's e2e resource-filtering cases -----------------------------------------------------


def test_whole_cluster_backup_takes_everything_but_the_never_list():
    got = taken({})
    assert "clusterroles.rbac.authorization.k8s.io /reader" in got
    assert "persistentvolumes /pv-1" in got
    assert "widgets.example.kubeplane.dev ns-1/w" in got
    assert "namespaces /ns-2" in got and "namespaces /kubeplane-system" in got
    assert "namespaces /old" not in got  # terminating
    # Never backed up: events, nodes, our own Backups; and the item carrying the exclude label.
    assert not any(g.startswith(("events ", "nodes ", "backups.")) for g in got)
    assert "configmaps ns-0/skip-me" not in got


def test_include_namespaces_takes_only_those_and_no_cluster_scoped_items():
    got = taken({"includedNamespaces": ["ns-0", "ns-1"]})
    assert {g for g in got if g.startswith("configmaps")} == {"configmaps ns-0/config", "configmaps ns-1/config"}
    assert "deployments.apps ns-2/web" not in got
    assert "clusterroles.rbac.authorization.k8s.io /reader" not in got
    assert "persistentvolumes /pv-1" not in got
    assert {g for g in got if g.startswith("namespaces")} == {"namespaces /ns-0", "namespaces /ns-1"}


def test_exclude_namespaces_drops_them_and_cluster_scoped_items():
    got = taken({"excludedNamespaces": ["ns-0"]})
    assert not any(" ns-0/" in g for g in got)
    assert "secrets ns-1/creds" in got and "secrets ns-2/creds" in got
    assert "namespaces /ns-0" not in got and "namespaces /ns-1" in got
    # Not every namespace is included any more, so (unset) includeClusterResources means none.
    assert "clusterroles.rbac.authorization.k8s.io /reader" not in got


def test_include_resources_by_plural_singular_and_short_name():
    for names in (["deployments", "configmaps"], ["deployment", "cm"], ["deploy", "configmap"],
                  ["deployments.apps", "configmaps"], ["Deployment", "ConfigMap"]):
        got = taken({"includedResources": names})
        assert got == {f"deployments.apps {n}/web" for n in ("ns-0", "ns-1", "ns-2")} | {
            f"configmaps {n}/config" for n in ("ns-0", "ns-1", "ns-2")}, names


def test_exclude_resources():
    got = taken({"includedNamespaces": ["ns-0"], "excludedResources": ["secrets"]})
    assert "secrets ns-0/creds" not in got
    assert "configmaps ns-0/config" in got and "deployments.apps ns-0/web" in got


def test_exclude_resources_and_namespaces_with_wildcards():
    got = taken({"includedNamespaces": ["ns-*"], "excludedNamespaces": ["ns-[12]"], "excludedResources": ["*.apps"]})
    assert "configmaps ns-0/config" in got
    assert "deployments.apps ns-0/web" not in got
    assert not any(" ns-1/" in g or " ns-2/" in g for g in got)


def test_label_selector():
    got = taken({"labelSelector": {"matchLabels": {"resourcefiltering": "true"}}})
    assert {g for g in got if not g.startswith("namespaces")} == {"deployments.apps ns-0/web",
                                                                 "deployments.apps ns-1/web"}
    # With the default namespace filter and a selector, only namespaces with selected items (or
    # whose own labels match) are kept.
    assert {g for g in got if g.startswith("namespaces")} == {"namespaces /ns-0", "namespaces /ns-1"}


def test_or_label_selectors():
    got = taken({"orLabelSelectors": [{"matchLabels": {"resourcefiltering": "true"}},
                                      {"matchLabels": {"app": "web"}}]})
    assert "deployments.apps ns-2/web" not in got
    assert "configmaps ns-2/config" in got and "deployments.apps ns-0/web" in got


def test_selector_matching_namespace_labels_tracks_the_namespace():
    got = taken({"labelSelector": {"matchLabels": {"team": "b"}}})
    assert got == {"namespaces /ns-1"}


def test_exclude_label_on_a_namespace_excludes_its_content():
    labelled = [namespace("ns-2", labels={EXCLUDE_LABEL: "true"}), namespace("ns-0")]
    extra = selection.excluded_by_label(labelled)
    assert extra == ["ns-2"]
    chosen = Selection.from_spec({}, TYPES, extra_excluded_namespaces=extra)
    assert not chosen.item_included(obj("ConfigMap", "config", "ns-2"))
    assert chosen.item_included(obj("ConfigMap", "config", "ns-0"))
    assert chosen.select_namespaces(labelled) == {"ns-0"}


def test_include_cluster_resources_tristate():
    pv = type_of("persistentvolumes")
    assert Selection.from_spec({}, TYPES).type_included(pv)
    assert not Selection.from_spec({"includedNamespaces": ["ns-0"]}, TYPES).type_included(pv)
    assert Selection.from_spec({"includedNamespaces": ["ns-0"], "includeClusterResources": True},
                               TYPES).type_included(pv)
    everything_but_cluster = Selection.from_spec({"includeClusterResources": False}, TYPES)
    assert not everything_but_cluster.type_included(pv)
    assert not everything_but_cluster.type_included(type_of("namespaces"))
    assert everything_but_cluster.type_included(type_of("configmaps"))
    # The resource filter still applies to cluster-scoped types when they are allowed.
    assert not Selection.from_spec({"includeClusterResources": True, "includedResources": ["configmaps"]},
                                   TYPES).type_included(pv)


def test_namespace_objects_survive_specific_namespaces_but_not_include_cluster_resources_false():
    assert "namespaces /ns-0" in taken({"includedNamespaces": ["ns-0"]})
    assert not any(g.startswith("namespaces") for g in taken({"includeClusterResources": False}))


def test_never_backed_up_even_when_asked_for_everything():
    chosen = Selection.from_spec({"includedResources": ["*"], "includeClusterResources": True}, TYPES)
    for gr in ("events", "events.events.k8s.io", "nodes", "backups.backup.kubeplane.dev"):
        assert not chosen.type_included(type_of(gr)), gr
    assert chosen.type_included(type_of("replicasets.apps.kubeplane.dev"))


def test_namespaces_to_list():
    assert Selection.from_spec({}).namespaces_to_list() is None
    assert Selection.from_spec({"includedNamespaces": ["*"]}).namespaces_to_list() is None
    assert Selection.from_spec({"includedNamespaces": ["a-*"]}).namespaces_to_list() is None
    listed = Selection.from_spec({"includedNamespaces": ["a", "b"], "excludedNamespaces": ["b"]})
    assert listed.namespaces_to_list() == ["a"]


# --- building blocks ---------------------------------------------------------------------------


def test_resolution_prefers_core_group_then_discovery_order():
    assert resolve_resource("events", TYPES) == "events"
    assert resolve_resource("events.events.k8s.io", TYPES) == "events.events.k8s.io"
    assert resolve_resource("replicasets", TYPES) == "replicasets.apps"
    assert resolve_resource("replicasets.apps.kubeplane.dev", TYPES) == "replicasets.apps.kubeplane.dev"
    assert resolve_resource("crd", TYPES) == "customresourcedefinitions.apiextensions.k8s.io"
    assert resolve_resource("po", TYPES) == "pods"
    assert resolve_resource("nosuchthing", TYPES) == "nosuchthing"
    assert resolve_resource("*.apps", TYPES) == "*.apps"
    assert resolve_resource("deployments", []) == "deployments"


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("*", "anything.at.all", True),
    ("*.apps", "deployments.apps", True),
    ("*.apps", "pods", False),
    ("ns-?", "ns-1", True),
    ("ns-?", "ns-10", False),
    ("ns-[0-2]", "ns-1", True),
    ("ns-[!0-2]", "ns-1", False),
    ("ns-[!0-2]", "ns-5", True),
    ("{pods,secrets}", "secrets", True),
    ("{pods,secrets}", "services", False),
    ("dev-{a,b*}", "dev-bee", True),
    ("a\\*", "a*", True),
    ("a\\*", "ab", False),
    ("exact", "exact", True),
    ("exact", "exactly", False),
    ("ns-[", "ns-[", False),  # invalid pattern matches nothing
])
def test_glob(pattern, value, expected):
    assert glob_match(pattern, value) is expected


def test_includes_excludes():
    assert IncludesExcludes.of().should_include("x")
    assert IncludesExcludes.of(["*"]).include_everything()
    assert IncludesExcludes.of(["*", "*"]).include_everything()
    assert not IncludesExcludes.of(["a"]).include_everything()
    assert not IncludesExcludes.of([], ["a"]).include_everything()
    both = IncludesExcludes.of(["a*"], ["ab"])
    assert both.should_include("ac") and not both.should_include("ab") and not both.should_include("b")


def test_labels_match_without_selectors_takes_all():
    chosen = Selection.from_spec({})
    assert chosen.labels_match(None) and chosen.labels_match({"a": "b"})
    assert not Selection.from_spec({"labelSelector": {"matchLabels": {"a": "b"}}}).labels_match(None)
    assert Selection.from_spec({"labelSelector": {}}).labels_match(None)  # empty selector: everything


def test_crds_for_custom_types_only():
    crds = [obj("CustomResourceDefinition", "widgets.example.kubeplane.dev",
                spec={"group": "example.kubeplane.dev", "names": {"plural": "widgets"}}),
            obj("CustomResourceDefinition", "gadgets.example.kubeplane.dev",
                spec={"group": "example.kubeplane.dev", "names": {"plural": "gadgets"}})]
    got = selection.crds_for([type_of("widgets.example.kubeplane.dev"), type_of("pods")], crds)
    assert [c["metadata"]["name"] for c in got] == ["widgets.example.kubeplane.dev"]


# --- validation --------------------------------------------------------------------------------


def test_valid_specs_have_no_errors():
    assert validate_backup_spec({}) == []
    assert validate_backup_spec({"includedNamespaces": ["ns-*"], "excludedResources": ["secrets"], "ttl": "24h",
                                 "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}) == []
    assert validate_restore_spec({"backupName": "b", "namespaceMapping": {"a": "b"},
                                  "existingResourcePolicy": "update"}) == []


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"includedResources": ["*", "pods"]}, "'*' alone"),
    ({"excludedResources": ["*"]}, "cannot contain '*'"),
    ({"includedResources": ["pods"], "excludedResources": ["pods"]}, "both included and excluded"),
    ({"includedNamespaces": ["a"], "excludedNamespaces": ["a"]}, "both included and excluded"),
    ({"includedNamespaces": ["Not_Valid"]}, "invalid namespace 'Not_Valid'"),
    ({"excludedNamespaces": ["-bad"]}, "invalid namespace '-bad'"),
    ({"includedResources": ["ns-[1"]}, "not a valid pattern"),
    ({"labelSelector": {}, "orLabelSelectors": [{}]}, "cannot both be set"),
    ({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "needs at least one value"),
    ({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}},
     "takes no values"),
    ({"orLabelSelectors": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]}, "unknown operator"),
    ({"ttl": "30d"}, "not a valid duration"),
    ({"ttl": "-1h"}, "negative"),
    ({"includedResources": ["events"]}, "never backed up"),
    ({"includedResources": ["no"]}, "never backed up"),
    ({"includeClusterResources": "yes"}, "includeClusterResources"),
])
def test_backup_validation_errors(spec, fragment):
    errors = validate_backup_spec(spec, TYPES)
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize(("spec", "fragment"), [
    ({}, "exactly one of backupName and scheduleName"),
    ({"backupName": "a", "scheduleName": "b"}, "exactly one of backupName and scheduleName"),
    ({"backupName": "a", "includedResources": ["nodes"]}, "nodes cannot be restored"),
    ({"backupName": "a", "includedResources": ["backups.backup.kubeplane.dev"]}, "cannot be restored"),
    ({"backupName": "a", "existingResourcePolicy": "replace"}, "existingResourcePolicy"),
    ({"backupName": "a", "namespaceMapping": {"a": "B_ad"}}, "namespaceMapping"),
    ({"backupName": "a", "namespaceMapping": {"a-*": "b"}}, "no wildcards"),
    ({"backupName": "a", "restoreStatus": {"includedResources": ["*", "pods"]}}, "restoreStatus"),
    ({"backupName": "a", "labelSelector": {}, "orLabelSelectors": []}, "cannot both be set"),
])
def test_restore_validation_errors(spec, fragment):
    errors = validate_restore_spec(spec, TYPES)
    assert any(fragment in e for e in errors), errors


def test_restore_selection_refuses_non_restorable_but_keeps_other_types():
    chosen = Selection.for_restore({"backupName": "x"}, TYPES)
    assert not chosen.resource_included("nodes", namespaced=False)
    assert not chosen.resource_included("events.events.k8s.io", namespaced=True)
    assert chosen.resource_included("deployments.apps", namespaced=True)
    assert chosen.resource_included("widgets.example.kubeplane.dev", namespaced=True)


def test_restore_cluster_scoped_items_follow_the_tristate():
    pv = obj("PersistentVolume", "pv-1")
    assert Selection.for_restore({}).item_included(pv)
    assert not Selection.for_restore({"includedNamespaces": ["a"]}).item_included(pv)
    assert Selection.for_restore({"includedNamespaces": ["a"], "includeClusterResources": True}).item_included(pv)


def test_unknown_resource_type_for_type_included():
    custom = rt("gizmos", "Gizmo", "other.example")
    assert Selection.from_spec({}).type_included(custom)
    assert not Selection.from_spec({"includedResources": ["widgets"]}, TYPES).type_included(custom)


def test_discovered_api_resources_work_with_the_rules():
    from operators.backup.discovery import ApiResource

    served = [ApiResource("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
              ApiResource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",))]
    assert resolve_resource("deploy", served) == "deployments.apps"
    assert resolve_resource("Deployment", served) == "deployments.apps"
    chosen = Selection.from_spec({"includedNamespaces": ["a"], "includedResources": ["deploy", "pv"]}, served)
    assert chosen.type_included(served[0]) and not chosen.type_included(served[1])
    crd = obj("CustomResourceDefinition", "deployments.apps",
              spec={"group": "apps", "names": {"plural": "deployments"}})
    assert selection.crds_for(served, [crd]) == [crd]


_PATTERN_PARTS = ["a", "b", "ns-1", "*", "?", "[ab]", "[!a]", "{a,ns-1}", "\\*", "\\a", "-"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PATTERN_PARTS), min_size=1, max_size=3).map("".join), max_size=4),
       st.lists(st.lists(st.sampled_from(_PATTERN_PARTS), min_size=1, max_size=3).map("".join), max_size=3),
       st.lists(st.sampled_from(["a", "b", "ab", "ns-1", "*", "ba", "a-b", ""]), min_size=1, max_size=5))
def test_literal_patterns_answered_by_set_lookup_agree_with_matching_every_pattern(
    includes: list[str], excludes: list[str], values: list[str]
) -> None:
    """should_include looks literal patterns up in a set; the answer must be matching every pattern."""
    chosen = IncludesExcludes.of(includes, excludes)
    for value in values:
        expected = not any(glob_match(p, value) for p in chosen.excludes) and (
            not chosen.includes or "*" in chosen.includes or any(glob_match(p, value) for p in chosen.includes))
        assert chosen.should_include(value) == expected, (includes, excludes, value)
