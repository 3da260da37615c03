"""Archive bombs (reliability issue, H5): a ~1 MB gzip holding a 200 MiB PAX header is refused before
tarfile reads the header, with a bounded amount of memory (the previous reader's peak rose from 21 to
426 MiB: tarfile reads an extended header whole before any size check)."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc

import pytest

from operators.backup.archive import VERSION_FILE, ArchiveRejected, Digest, Manifest, verify_archive

HEADER_BYTES = 200 << 20


def bomb(kind: bytes) -> bytes:
    """A gzip tarball whose first member is an extended header (`kind`) of 200 MiB of 'a'."""
    info = tarfile.TarInfo("././@PaxHeader" if kind in (b"x", b"g") else "././@LongLink")
    info.type = kind
    info.size = HEADER_BYTES
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        block = b"a" * (1 << 20)
        for _ in range(HEADER_BYTES >> 20):
            gz.write(block)
        gz.write(b"\0" * 1024)
    return out.getvalue()


@pytest.mark.parametrize("kind", [b"x", b"g", b"L", b"K"])
def test_a_giant_extended_header_is_refused_in_bounded_memory(kind: bytes) -> None:
    data = bomb(kind)
    assert len(data) < 1_200_000  # small to upload, huge to expand
    manifest = Manifest(Digest("0" * 64, len(data)), {VERSION_FILE: Digest("0" * 64, 6)})
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveRejected, match="extended tar header of 209715200 bytes"):
            verify_archive(io.BytesIO(data), manifest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak >> 20} MiB while refusing the archive"


def test_ordinary_long_names_still_pass_the_guard() -> None:
    # A PAX header of a few hundred bytes (a long path) goes through to tarfile as before.
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        payload = b"1.1.0\n"
        info = tarfile.TarInfo(VERSION_FILE)
        info.size = len(payload)
        info.pax_headers = {"comment": "x" * 300}
        tar.addfile(info, io.BytesIO(payload))
    manifest = Manifest(Digest("0" * 64, 1), {VERSION_FILE: Digest("0" * 64, 6)})
    with pytest.raises(ArchiveRejected) as caught:
        verify_archive(io.BytesIO(out.getvalue()), manifest)
    assert not any("extended tar header" in p for p in caught.value.problems)  # checksums, not the guard
