"""The storage put/get hot path (docs/adr/0003-host-benchmark.md): atomic replacement, folders made on demand,
clear errors, no temporaries left behind, and Promises that still settle in a later job (spec §3.0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kplug_testing import Host
from siyuan_probe import run, started

from kplug_lab.host.ops.storage import TRAVERSAL, Storage, StorageError


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".kplug-")]


def test_put_replaces_the_file_by_rename_so_a_reader_keeps_the_old_content(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "st")
    storage.put("doc.json", b"old")
    with open(storage.root / "doc.json", "rb") as reader:
        storage.put("doc.json", b"new content")
        assert reader.read() == b"old"  # the old file was replaced, never truncated and rewritten in place
    assert (storage.root / "doc.json").read_bytes() == b"new content"
    assert _temporaries(storage.root) == []


def test_put_makes_missing_folders_and_leaves_no_temporaries(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "st")
    storage.put("a/b/c.txt", "héllo".encode())
    storage.put("/a/b/d.txt", b"")
    assert (storage.root / "a" / "b" / "c.txt").read_text(encoding="utf-8") == "héllo"
    assert (storage.root / "a" / "b" / "d.txt").read_bytes() == b""
    assert storage.get("a/b/c.txt") == "héllo".encode()
    assert _temporaries(storage.root) == []


def test_put_below_a_file_says_the_folder_cannot_be_made(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "st")
    storage.put("plain", b"x")
    with pytest.raises(StorageError, match=r"^failed to make directory: "):
        storage.put("plain/child.txt", b"y")
    assert (storage.root / "plain").read_bytes() == b"x"
    assert _temporaries(storage.root) == []


def test_put_onto_a_folder_or_the_root_fails_and_leaves_no_temporaries(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "st")
    (storage.root / "folder").mkdir()
    with pytest.raises(StorageError) as folder:
        storage.put("folder", b"x")
    assert str(folder.value) == "failed to write file: open folder: is a directory"
    with pytest.raises(StorageError) as root:
        storage.put("/", b"x")
    assert str(root.value) == "failed to write file: open .: is a directory"
    assert _temporaries(storage.root) == []
    assert (storage.root / "folder").is_dir()


def test_put_and_get_through_a_symlinked_folder_that_leads_out_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage = Storage(tmp_path / "st")
    (storage.root / "out").symlink_to(outside)
    for attempt in (lambda: storage.put("out/new/x.txt", b"x"), lambda: storage.put("out/x.txt", b"x"),
                    lambda: storage.get("out/x.txt")):
        with pytest.raises(StorageError) as refused:
            attempt()
        assert str(refused.value) == TRAVERSAL
    assert list(outside.iterdir()) == []


def test_get_of_a_folder_or_a_missing_file_names_the_storage_path(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "st")
    (storage.root / "folder").mkdir()
    with pytest.raises(StorageError) as folder:
        storage.get("folder")
    assert str(folder.value) == "read folder: is a directory"
    with pytest.raises(StorageError) as missing:
        storage.get("/no/such.json")
    assert str(missing.value) == "open no/such.json: no such file or directory"


async def test_put_and_get_settle_in_a_later_job_after_every_microtask_of_the_current_one(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const order = [];
      const put = siyuan.storage.put("later.txt", "x").then((v) => order.push(["put", v]));
      let chain = Promise.resolve();
      for (let i = 0; i < 50; i++) chain = chain.then(() => order.push(i));
      await Promise.all([put, chain]);
      const get = siyuan.storage.get("later.txt").then((d) => d.text()).then((t) => order.push(["get", t]));
      chain = Promise.resolve();
      for (let i = 0; i < 50; i++) chain = chain.then(() => order.push(i));
      await Promise.all([get, chain]);
      return order;
    """)
    counts = list(range(50))
    assert got == [*counts, ["put", None], *counts, ["get", "x"]]


async def test_failed_put_rejects_in_a_later_job_with_a_go_error(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const order = [];
      const put = siyuan.storage.put("../escape.txt", "x").then(
        () => order.push("resolved"), (e) => order.push([e.name, e.message, e instanceof GoError]));
      let chain = Promise.resolve();
      for (let i = 0; i < 10; i++) chain = chain.then(() => order.push(i));
      await Promise.all([put, chain]);
      return order;
    """)
    assert got == [*range(10), ["GoError", TRAVERSAL, True]]
