import gzip
import hashlib
import io
import json
import tarfile
from typing import Any

import pytest

from operators.backup import archive
from operators.backup.archive import (
    ArchiveError,
    ArchiveRejected,
    ArchiveWriter,
    Digest,
    Limits,
    Manifest,
    VerifiedArchive,
    item_path,
    parse_item_path,
    verify_archive,
)
from tests.unit.backup.objects import obj

ITEMS = [
    ("pods", obj("Pod", "web-1", "shop", spec={"containers": [{"name": "c", "image": "nginx"}]})),
    ("deployments.apps", obj("Deployment", "web", "shop", api_version="apps/v1", spec={"replicas": 2})),
    ("clusterroles.rbac.authorization.k8s.io",
     obj("ClusterRole", "system:reader", api_version="rbac.authorization.k8s.io/v1")),
    ("widgets.example.kubeplane.dev", obj("Widget", "w", "shop", api_version="example.kubeplane.dev/v1alpha1")),
    ("secrets", obj("Secret", "creds", "shop", data={"password": "czNjcjN0"})),
]


class WriteOnly:
    """A sink that cannot seek or tell: proves the writer streams."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        return self.buffer.write(data)

    def flush(self) -> None:
        pass


def write_backup(items=ITEMS, **kwargs: Any) -> tuple[bytes, Manifest]:
    sink = WriteOnly()
    with ArchiveWriter(sink, mtime=0, **kwargs) as writer:  # type: ignore[arg-type]
        for gr, item in items:
            writer.add_item(item, gr)
    return sink.buffer.getvalue(), writer.close()


# --- layout ------------------------------------------------------------------------------------


def test_item_paths_follow_velero():
    assert item_path("pods", "shop", "web-1") == "resources/pods/namespaces/shop/web-1.json"
    assert item_path("deployments.apps", "shop", "web") == "resources/deployments.apps/namespaces/shop/web.json"
    assert item_path("clusterroles.rbac.authorization.k8s.io", "", "system:reader") == \
        "resources/clusterroles.rbac.authorization.k8s.io/cluster/system:reader.json"
    assert item_path("deployments.apps", "shop", "web", "v1-preferredversion") == \
        "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"
    for bad in ("..", ".", "a/b", ""):
        with pytest.raises(ArchiveError):
            item_path("pods", "shop", bad)


def test_parse_item_path_round_trips():
    parsed = parse_item_path("resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json")
    assert parsed == archive.ItemPath("deployments.apps", "shop", "web", "v1", True)
    assert parse_item_path("resources/nodes/cluster/n1.json") == archive.ItemPath("nodes", "", "n1")
    assert parse_item_path("resources/hpa.autoscaling/v2/namespaces/a/b.json").version == "v2"
    for bad in ("resources/pods/namespaces/web.json", "resources/pods/elsewhere/a/b.json", "metadata/version",
                "resources/pods/cluster/x.yaml", "resources/pods/namespaces/a/b/c.json"):
        with pytest.raises(ArchiveError):
            parse_item_path(bad)


def test_writer_writes_velero_layout_with_preferred_version_copies():
    data, manifest = write_backup()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert names[0] == "metadata/version"
        assert tar.extractfile("metadata/version").read() == b"1.1.0\n"  # type: ignore[union-attr]
        assert all(tar.getmember(n).isreg() for n in names)
    assert "resources/pods/namespaces/shop/web-1.json" in names
    assert "resources/pods/v1-preferredversion/namespaces/shop/web-1.json" in names
    assert "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json" in names
    assert "resources/widgets.example.kubeplane.dev/v1alpha1-preferredversion/namespaces/shop/w.json" in names
    assert "resources/clusterroles.rbac.authorization.k8s.io/cluster/system:reader.json" in names
    assert set(manifest.members) == set(names)
    assert manifest.archive == Digest(hashlib.sha256(data).hexdigest(), len(data))


def test_non_preferred_version_goes_to_plain_version_dir_and_copies_can_be_off():
    sink = io.BytesIO()
    with ArchiveWriter(sink) as writer:
        paths = writer.add_item(obj("HorizontalPodAutoscaler", "h", "a", api_version="autoscaling/v1"),
                                "horizontalpodautoscalers.autoscaling", preferred_version="v2")
    assert paths == ["resources/horizontalpodautoscalers.autoscaling/v1/namespaces/a/h.json"]
    _, manifest = write_backup(preferred_version_copies=False)
    assert not any("preferredversion" in p for p in manifest.members)


def test_writer_refuses_duplicates_and_bad_paths():
    with ArchiveWriter(io.BytesIO()) as writer:
        writer.add_item(ITEMS[0][1], "pods")
        with pytest.raises(ArchiveError, match="twice"):
            writer.add_item(ITEMS[0][1], "pods")
        with pytest.raises(ArchiveError):
            writer.add_bytes("../evil", b"x")
        with pytest.raises(ArchiveError):
            writer.add_bytes("notes/readme.txt", b"x")


def test_writer_streams_into_the_sink():
    many = [("configmaps", obj("ConfigMap", f"cm-{i}", "a", data={"k": hashlib.sha256(str(i).encode()).hexdigest()}))
            for i in range(2000)]
    sink = WriteOnly()
    writer = ArchiveWriter(sink)  # type: ignore[arg-type]
    for gr, item in many[:1000]:
        writer.add_item(item, gr)
    written_midway = sink.buffer.tell()
    for gr, item in many[1000:]:
        writer.add_item(item, gr)
    writer.close()
    assert written_midway > 0 and sink.writes > 2  # bytes left before the end: not buffered whole


def test_manifest_json_round_trip_and_malformed_manifests():
    _, manifest = write_backup()
    assert Manifest.from_json(manifest.to_json()) == manifest
    for bad in (b"not json", b"[]", json.dumps({"format": "other"}).encode(),
                json.dumps({"format": archive.MANIFEST_FORMAT, "algorithm": "md5"}).encode(),
                manifest.to_json().replace(b'"size": ', b'"size": -')):
        with pytest.raises(ArchiveRejected):
            Manifest.from_json(bad)


def test_resource_list_and_keys():
    listed = archive.ResourceList()
    for entry in [("v1", "Node", "", "n1"), ("apps/v1", "Deployment", "b", "web"),
                  ("apps/v1", "Deployment", "a", "web"),
                  ("v1", "ConfigMap", "é", "x"), ("v1", "ConfigMap", "z", "x")]:
        listed.add(*entry)
    out = io.BytesIO()
    listed.write_json(out)
    expected = {"apps/v1/Deployment": ["a/web", "b/web"], "v1/ConfigMap": ["z/x", "é/x"], "v1/Node": ["n1"]}
    assert out.getvalue() == json.dumps(expected).encode()  # Velero's file, as json.dumps writes it
    empty = io.BytesIO()
    archive.ResourceList().write_json(empty)
    assert json.loads(empty.getvalue()) == {}
    keys = archive.BackupKeys("nightly")
    assert keys.contents == "backups/nightly/nightly.tar.gz"
    assert keys.checksums == "backups/nightly/nightly-checksums.json"
    assert keys.resource_list == "backups/nightly/nightly-resource-list.json.gz"
    assert archive.RestoreKeys("r1").logs == "restores/r1/restore-r1-logs.gz"


# --- reading back ------------------------------------------------------------------------------


def test_round_trip_yields_each_object_once():
    data, manifest = write_backup()
    verify_archive(io.BytesIO(data), manifest)
    with VerifiedArchive(io.BytesIO(data), manifest) as backup:
        assert backup.format_version == "1.1.0"
        got = {(i.group_resource, i.namespace, i.name): i.obj for i in backup.items()}
    assert got == {(gr, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for gr, o in ITEMS}


def test_archive_with_only_versioned_copies_yields_the_preferred_one():
    tar = build_tar([
        ("metadata/version", b"1.1.0\n"),
        ("resources/pods/v1-preferredversion/namespaces/a/p.json", json.dumps(obj("Pod", "p", "a")).encode()),
        ("resources/pods/v2/namespaces/a/p.json", json.dumps(obj("Pod", "p", "a", api_version="v2")).encode()),
    ])
    with VerifiedArchive(io.BytesIO(tar), manifest_for(tar)) as backup:
        items = list(backup.items())
    assert [(i.name, i.obj["apiVersion"]) for i in items] == [("p", "v1")]


def test_items_need_the_context_manager():
    data, manifest = write_backup()
    with pytest.raises(ArchiveError):
        list(VerifiedArchive(io.BytesIO(data), manifest).items())


# --- malicious and damaged archives ------------------------------------------------------------


def build_tar(members: list[tuple[str, bytes]], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for info in extra or []:
            tar.addfile(info)
    return gzip.compress(raw.getvalue())


def manifest_for(data: bytes) -> Manifest:
    """A manifest that matches `data` exactly: the checks under test must fail on their own."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            if info.isreg():
                content = tar.extractfile(info).read()  # type: ignore[union-attr]
                members[info.name] = Digest(hashlib.sha256(content).hexdigest(), len(content))
    return Manifest(Digest(hashlib.sha256(data).hexdigest(), len(data)), members)


GOOD = [("metadata/version", b"1.1.0\n"),
        ("resources/pods/namespaces/a/p.json", json.dumps(obj("Pod", "p", "a")).encode())]


def link(name: str, kind: bytes, target: str = "/etc/passwd") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


MALICIOUS = {
    "traversal": (build_tar([*GOOD, ("resources/../../etc/cron.d/x.json", b"{}")]), "'..'"),
    "absolute path": (build_tar([*GOOD, ("/etc/passwd", b"root")]), "absolute"),
    "unknown top-level directory": (build_tar([*GOOD, ("evil/x.json", b"{}")]), "unknown top-level"),
    "symlink": (build_tar(GOOD, [link("resources/pods/namespaces/a/q.json", tarfile.SYMTYPE)]), "symlink"),
    "hard link": (build_tar(GOOD, [link("resources/pods/namespaces/a/q.json", tarfile.LNKTYPE,
                                        "resources/pods/namespaces/a/p.json")]), "hard link"),
    "device": (build_tar(GOOD, [link("resources/pods/namespaces/a/dev.json", tarfile.CHRTYPE, "")]), "device"),
    "fifo": (build_tar(GOOD, [link("resources/pods/namespaces/a/f.json", tarfile.FIFOTYPE, "")]), "FIFO"),
    "unknown metadata file": (build_tar([*GOOD, ("metadata/extra", b"x")]), "unknown metadata"),
    "not the layout": (build_tar([*GOOD, ("resources/pods/x.json", b"{}")]), "not a resource path"),
    "duplicate member": (build_tar([*GOOD, GOOD[1]]), "appears twice"),
    "backslash": (build_tar([*GOOD, ("resources/pods/namespaces/a/..\\x.json", b"{}")]), "backslash"),
    "directory outside the layout": (build_tar(GOOD, [link("etc", tarfile.DIRTYPE, "")]), "directory"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_rejected_before_any_item(case):
    data, fragment = MALICIOUS[case]
    manifest = manifest_for(data)
    yielded = []
    with pytest.raises(ArchiveRejected, match=fragment):
        with VerifiedArchive(io.BytesIO(data), manifest) as backup:
            yielded.extend(backup.items())
    assert yielded == []
    with pytest.raises(ArchiveRejected, match=fragment):
        verify_archive(io.BytesIO(data), manifest)


def test_a_member_name_that_is_not_utf8_is_rejected() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT, errors="surrogateescape") as tar:
        for name, content in [*GOOD, ("resources/pods/namespaces/a/x\udc80.json", b"{}")]:  # the bytes x 0x80
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    data = gzip.compress(raw.getvalue())
    good = manifest_for(build_tar(GOOD))
    manifest = Manifest(Digest(hashlib.sha256(data).hexdigest(), len(data)), good.members)
    with pytest.raises(ArchiveRejected, match="not valid UTF-8"):  # not an error of the manifest's table
        verify_archive(io.BytesIO(data), manifest)
    with pytest.raises(ArchiveRejected, match="not valid UTF-8"):  # a later pass (the tarball replaced since)
        list(archive.stream_items(io.BytesIO(data), manifest, lambda path: path.startswith("resources/")))


def rejected(data: bytes, manifest: Manifest, limits: Limits | None = None) -> ArchiveRejected:
    yielded = []
    with pytest.raises(ArchiveRejected) as info:
        with VerifiedArchive(io.BytesIO(data), manifest, limits) as backup:
            yielded.extend(backup.items())
    assert yielded == []
    return info.value


def test_oversized_member_total_and_count_limits():
    big = build_tar([*GOOD, ("resources/configmaps/namespaces/a/big.json", b"x" * 5000)])
    assert "member limit" in str(rejected(big, manifest_for(big), Limits(max_member_bytes=4096)))
    many = build_tar([*GOOD] + [(f"resources/configmaps/namespaces/a/c{i}.json",
                                 json.dumps(obj("ConfigMap", f"c{i}", "a")).encode()) for i in range(10)])
    assert "more than 5 members" in str(rejected(many, manifest_for(many), Limits(max_members=5)))
    assert "add up to more than" in str(rejected(many, manifest_for(many), Limits(max_total_bytes=300)))
    assert "compressed archive exceeds" in str(rejected(many, manifest_for(many), Limits(max_archive_bytes=100)))


def test_decompression_bomb_is_cut_off():
    bomb = build_tar([*GOOD, ("resources/configmaps/namespaces/a/zeros.json", b"\0" * (4 << 20))])
    assert len(bomb) < 64 << 10
    error = rejected(bomb, manifest_for(bomb), Limits(max_member_bytes=8 << 20, max_total_bytes=1 << 20,
                                                     max_members=10))
    assert "exceeds the limit" in str(error) or "add up to more than" in str(error)


def test_tampered_member_is_rejected_with_its_name():
    data, manifest = write_backup()
    forged = dict(ITEMS)["secrets"] | {"data": {"password": "b3duZWQ="}}
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            content = tar.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "resources/secrets/namespaces/shop/creds.json":
                content = json.dumps(forged).encode()
            members.append((info.name, content))
    tampered = build_tar(members)
    error = rejected(tampered, manifest)
    assert "resources/secrets/namespaces/shop/creds.json: checksum mismatch" in error.problems
    assert any("tarball's checksum" in p for p in error.problems)


def test_same_size_tampering_is_caught_by_the_member_checksum_alone():
    data, manifest = write_backup()
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            content = tar.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "resources/secrets/namespaces/shop/creds.json":
                content = content.replace(b"czNjcjN0", b"b3duZWQx")
            members.append((info.name, content))
    tampered = build_tar(members)
    # Even with the whole-archive checksum forged to match, the member's own checksum fails.
    forged = Manifest(Digest(hashlib.sha256(tampered).hexdigest(), len(tampered)), manifest.members)
    assert rejected(tampered, forged).problems == ["resources/secrets/namespaces/shop/creds.json: checksum mismatch"]


def test_flipped_byte_in_the_compressed_tarball_is_rejected():
    data, manifest = write_backup()
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0x01
    rejected(bytes(corrupt), manifest)


def test_member_missing_from_manifest_or_from_archive():
    data, manifest = write_backup()
    dropped = "resources/pods/namespaces/shop/web-1.json"
    without_entry = Manifest(manifest.archive, {k: v for k, v in manifest.members.items() if k != dropped})
    assert f"{dropped}: not in the checksum manifest" in rejected(data, without_entry).problems
    phantom = "resources/pods/namespaces/shop/ghost.json"
    with_phantom = Manifest(manifest.archive, {**manifest.members, phantom: Digest("0" * 64, 1)})
    assert any(p.startswith(f"{phantom}: in the checksum manifest but missing") for p in
               rejected(data, with_phantom).problems)


def test_member_whose_object_contradicts_its_path():
    elsewhere = json.dumps(obj("Pod", "p", "kube-system")).encode()
    data = build_tar([GOOD[0], ("resources/pods/namespaces/a/p.json", elsewhere)])
    assert any("not what its path says" in p for p in rejected(data, manifest_for(data)).problems)
    data = build_tar([GOOD[0], ("resources/pods/namespaces/a/p.json", b"{not json")])
    assert any("not valid JSON" in p for p in rejected(data, manifest_for(data)).problems)


def test_missing_or_unsupported_version_and_garbage():
    data = build_tar([GOOD[1]])
    assert "metadata/version is missing" in rejected(data, manifest_for(data)).problems
    data = build_tar([("metadata/version", b"2.0.0\n"), GOOD[1]])
    assert any("unsupported backup format" in p for p in rejected(data, manifest_for(data)).problems)
    garbage = b"this is not a gzip file at all" * 10
    assert "not a readable gzip tarball" in str(rejected(garbage, Manifest(Digest("0" * 64, 0))))


def test_truncated_tarball_is_rejected():
    data, manifest = write_backup()
    rejected(data[: len(data) // 2], manifest)


def test_streaming_verify_reports_good_archives_as_good():
    data, manifest = write_backup()
    verify_archive(io.BytesIO(data), manifest)
    with pytest.raises(ArchiveRejected):
        verify_archive(io.BytesIO(data + b"trailing"), manifest)


def test_path_problem_accepts_only_the_layout():
    assert archive.path_problem("metadata/version") is None
    assert archive.path_problem("resources/pods/namespaces/a/b.json") is None
    assert archive.path_problem("resources//pods/namespaces/a/b.json") is not None
    assert archive.path_problem("resources/pods/./namespaces/a/b.json") is not None
    assert archive.path_problem("x" * 2000) is not None
    assert archive.path_problem("resources/pods/namespaces/a/b\x00.json") is not None


# --- a restore's passes: index, then stream ------------------------------------------------------


def keyed(items: list[archive.ArchiveItem]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(i.group_resource, i.namespace, i.name): i.obj for i in items}


def test_index_holds_whole_objects_within_the_budget():
    data, manifest = write_backup()
    index = archive.index_archive(io.BytesIO(data), manifest)
    assert index.whole and index.format_version == "1.1.0"
    assert keyed(index.all_items()) == {(gr, o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                                        for gr, o in ITEMS}


def test_index_past_the_budget_holds_skeletons_and_streaming_gives_the_objects():
    namespace = obj("Namespace", "shop", labels={"team": "a"}) | {"spec": {"finalizers": ["kubernetes"]}}
    owned = obj("Pod", "web-0", "shop", labels={"app": "web"},
                spec={"containers": [{"name": "c", "image": "x" * 4000}]})
    owned["metadata"] |= {"uid": "u-1", "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "u-0"}],
                          "annotations": {"big": "y" * 4000}}
    items = [("namespaces", namespace), ("pods", owned), *ITEMS]
    data, manifest = write_backup(items)
    index = archive.index_archive(io.BytesIO(data), manifest, budget=1000)
    assert not index.whole
    got = keyed(index.all_items())
    assert got[("namespaces", "", "shop")] == namespace  # whole: a restore needs it first
    assert all(i.obj is None for i in index.all_items() if i.group_resource != "namespaces")
    pod = next(i for i in index.all_items() if i.name == "web-0")
    assert (pod.api_version, pod.kind, pod.uid, pod.owner_references) == (
        "v1", "Pod", "u-1", ({"kind": "ReplicaSet", "name": "web", "uid": "u-0"},))
    assert pod.path == "resources/pods/namespaces/shop/web-0.json"

    # A later pass yields exactly the wanted members, each once (the restored copy), in full.
    wanted = {i.path for i in index.all_items() if i.group_resource in ("pods", "secrets")}
    streamed = list(archive.stream_items(io.BytesIO(data), manifest, wanted.__contains__))
    assert keyed(streamed) == {("pods", "shop", "web-0"): owned, ("pods", "shop", "web-1"): dict(ITEMS)["pods"],
                               ("secrets", "shop", "creds"): dict(ITEMS)["secrets"]}


def test_index_holds_only_what_the_selection_takes_and_every_namespace():
    namespace = obj("Namespace", "shop", labels={"team": "a"})
    items = [("namespaces", namespace), *ITEMS]
    data, manifest = write_backup(items)
    asked: list[tuple[str, str]] = []

    def only_pods(group_resource: str, o: dict[str, Any]) -> bool:
        asked.append((group_resource, o["metadata"]["name"]))
        return group_resource == "pods"

    for budget in (archive.INDEX_BUDGET, 0):
        asked.clear()
        index = archive.index_archive(io.BytesIO(data), manifest, budget=budget, select=only_pods)
        assert sorted(keyed(index.all_items())) == [("namespaces", "", "shop"), ("pods", "shop", "web-1")]
        # Each object asked about once (its restored copy only), Namespaces never (they are always held).
        assert sorted(asked) == sorted((gr, o["metadata"]["name"]) for gr, o in ITEMS)


def test_a_member_replaced_after_indexing_is_refused_when_streamed():
    data, manifest = write_backup()
    index = archive.index_archive(io.BytesIO(data), manifest, budget=0)
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            content = tar.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "resources/secrets/namespaces/shop/creds.json":
                content = json.dumps(dict(ITEMS)["secrets"] | {"data": {"password": "b3duZWQ="}}).encode()
            members.append((info.name, content))
    swapped = build_tar(members)
    wanted = {i.path for i in index.all_items()}
    with pytest.raises(ArchiveRejected) as error:
        list(archive.stream_items(io.BytesIO(swapped), manifest, wanted.__contains__))
    assert error.value.problems == ["resources/secrets/namespaces/shop/creds.json: changed after verification"]


def test_index_refuses_what_verification_refuses():
    data, manifest = write_backup()
    with pytest.raises(ArchiveRejected):
        archive.index_archive(io.BytesIO(data[: len(data) // 2]), manifest)


@pytest.mark.parametrize("members", [{}, {"resources/b/cluster/x.json": archive.Digest("ab" * 32, 5),
                                          "resources/a/namespaces/n/\u00e9\"q\\.json": archive.Digest("cd" * 32, 0),
                                          "metadata/version": archive.Digest("ef" * 32, 123456789)}])
def test_the_manifest_written_member_by_member_is_json_dumps_byte_for_byte(members: dict) -> None:
    manifest = archive.Manifest(archive.Digest("00" * 32, 42), members)
    document = {"format": archive.MANIFEST_FORMAT, "algorithm": "sha256", "archive": {"sha256": "00" * 32, "size": 42},
                "members": {p: {"sha256": d.sha256, "size": d.size} for p, d in sorted(members.items())}}
    assert manifest.to_json() == json.dumps(document, indent=1, sort_keys=True).encode()
    assert archive._parse_manifest_layout(io.BytesIO(manifest.to_json())) == manifest  # read member by member
    assert archive.Manifest.from_json(manifest.to_json()) == manifest
    # Any other layout of the same document is read whole, to the same manifest.
    assert archive._parse_manifest_layout(io.BytesIO(json.dumps(document).encode())) is None
    assert archive.Manifest.from_json(json.dumps(document).encode()) == manifest


def test_a_manifest_in_the_written_layout_but_out_of_order_is_read_whole_with_the_same_checks():
    manifest = archive.Manifest(archive.Digest("00" * 32, 1),
                                {"resources/a/cluster/x.json": archive.Digest("ab" * 32, 5),
                                 "resources/b/cluster/y.json": archive.Digest("cd" * 32, 6)})
    text = manifest.to_json()
    head, members = text.split(b' "members": {\n')
    first, second = members[: -len(b"\n }\n}")].split(b"\n  },\n")
    swapped = head + b' "members": {\n' + second + b",\n" + first + b"\n  }\n }\n}"
    assert json.loads(swapped) == json.loads(text)
    assert archive._parse_manifest_layout(io.BytesIO(swapped)) is None  # paths must increase: read whole instead
    assert archive.Manifest.from_json(swapped) == manifest
    duplicated = text.replace(b'"resources/b/cluster/y.json"', b'"resources/a/cluster/x.json"')
    # not increasing: read whole (the last entry wins)
    assert archive._parse_manifest_layout(io.BytesIO(duplicated)) is None
    assert set(archive.Manifest.from_json(duplicated).members) == {"resources/a/cluster/x.json"}
    for size in (b"-6", b"9223372036854775808", b"18446744073709551616"):  # negative, 2**63, 2**64
        with pytest.raises(ArchiveRejected, match="malformed"):
            archive.Manifest.from_json(text.replace(b'"size": 6', b'"size": ' + size))


def test_type_spans_are_the_first_and_last_archive_positions_of_each_type():
    items = [("secrets", obj("Secret", "a", "shop")), ("pods", obj("Pod", "p", "shop")),
             ("secrets", obj("Secret", "b", "shop")), ("configmaps", obj("ConfigMap", "c", "shop"))]
    data, manifest = write_backup(items)
    index = archive.index_archive(io.BytesIO(data), manifest, budget=0)
    try:
        assert index.items.type_spans() == {"secrets": (0, 2), "pods": (1, 1), "configmaps": (3, 3)}
    finally:
        index.items.close()
