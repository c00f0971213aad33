"""Where kplug_lab keeps its own files beside a SiYuan workspace (kplug_lab/durable/places.py): nothing of its
own in SiYuan's synced ``data/`` (only plugin storage), petals.json never written, an old store moved once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kplug_testing import captured_logs, write_petals, write_plugin

from kplug_lab.durable.places import LEGACY_WORKSPACE_DATA, STORE_FILE, WORKSPACE_DATA, migrate_legacy_store
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager

WRITER = """
siyuan.rpc.bind("write", async (k, v) => {
  await siyuan.storage.put("notes/" + k + ".txt", v);
  await kplug.kv.set(k, v);
  return await kplug.kv.get(k);
});
siyuan.rpc.bind("read", (k) => kplug.kv.get(k));
"""


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its modification time and (for files) its bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in [root, *root.rglob("*")]}


def workspace_with_plugins(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write_plugin(ws / "data" / "plugins", "writer", WRITER)
    write_plugin(ws / "data" / "plugins", "off", "siyuan.rpc.bind('x', () => 1);")
    # an entry without plugin.json: SiYuan purges and rewrites, kplug_lab leaves the file alone
    write_petals(ws, [{"name": "writer", "enabled": True}, {"name": "off", "enabled": False},
                      {"name": "gone", "enabled": True}])
    (ws / "data" / "storage" / "petal" / "writer").mkdir(parents=True)
    return ws


async def test_a_run_writes_nothing_under_data_except_plugin_storage_and_leaves_petals_json_alone(
        tmp_path: Path) -> None:
    ws = workspace_with_plugins(tmp_path)
    petals = (ws / "data" / "storage" / "petal" / "petals.json").read_bytes()
    before = snapshot(ws / "data")
    manager = PluginManager(HostConfig(hot_reload=False), workspace=ws)
    await manager.start()
    try:
        assert await manager.call("writer", "write", ["k", "v"]) == "v"
    finally:
        await manager.close()

    after = snapshot(ws / "data")
    storage = Path("storage") / "petal" / "writer"
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed and all(Path(p) == storage or storage in Path(p).parents for p in changed), changed
    assert (ws / "data" / "storage" / "petal" / "petals.json").read_bytes() == petals
    assert (ws / WORKSPACE_DATA / STORE_FILE).is_file()
    assert not (ws / LEGACY_WORKSPACE_DATA).exists()


async def test_an_old_store_in_the_synced_tree_is_moved_once_with_a_log_line(tmp_path: Path) -> None:
    ws = workspace_with_plugins(tmp_path)
    manager = PluginManager(HostConfig(hot_reload=False, data_dir=ws / LEGACY_WORKSPACE_DATA), workspace=ws)
    await manager.start()  # an earlier kplug_lab: its store in data/storage/kplug
    try:
        await manager.call("writer", "write", ["kept", "across the move"])
    finally:
        await manager.close()
    old = ws / LEGACY_WORKSPACE_DATA
    assert (old / STORE_FILE).is_file()

    with captured_logs("kplug_lab.durable") as records:
        manager = PluginManager(HostConfig(hot_reload=False), workspace=ws)
        await manager.start()
        try:
            assert await manager.call("writer", "read", ["kept"]) == "across the move"
        finally:
            await manager.close()
    assert any("moved the durable store" in r.getMessage() for r in records)
    # the old folder goes; at most a compiled-code cache an old host may still have been finishing (a cache, not
    # state) may be left, never a piece of the store
    leftovers = sorted(str(p.relative_to(old)) for p in old.rglob("*") if "bytecode" not in p.relative_to(old).parts)
    assert leftovers == [] and not (old / STORE_FILE).exists(), leftovers
    assert (ws / WORKSPACE_DATA / STORE_FILE).is_file()


def test_the_wal_moves_with_its_database_and_committed_rows_survive(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    db = sqlite3.connect(old / STORE_FILE)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # the row stays in the WAL only
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES ('in the wal')")
    db.commit()
    copy = {name: (old / name).read_bytes() for name in (STORE_FILE, STORE_FILE + "-wal")}
    db.close()  # closing checkpoints: put back the files as a crashed host leaves them
    for name, data in copy.items():
        (old / name).write_bytes(data)

    assert migrate_legacy_store(old, new)
    assert sorted(p.name for p in new.iterdir()) == [STORE_FILE, STORE_FILE + "-wal"]
    with sqlite3.connect(new / STORE_FILE) as moved:
        assert moved.execute("SELECT v FROM t").fetchall() == [("in the wal",)]
    assert not migrate_legacy_store(old, new)  # once


def test_an_interrupted_move_is_finished_and_an_existing_store_is_never_overwritten(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / STORE_FILE).write_bytes(b"db")
    (new / (STORE_FILE + "-wal")).write_bytes(b"wal")  # moved before the power went out
    assert migrate_legacy_store(old, new)
    assert (new / STORE_FILE).read_bytes() == b"db" and (new / (STORE_FILE + "-wal")).read_bytes() == b"wal"

    old.mkdir()
    (old / STORE_FILE).write_bytes(b"other")
    with captured_logs("kplug_lab.durable") as records:
        assert not migrate_legacy_store(old, new)
    assert (new / STORE_FILE).read_bytes() == b"db" and (old / STORE_FILE).read_bytes() == b"other"
    assert any("two durable stores" in r.getMessage() for r in records)


async def test_kplug_labs_own_choices_win_over_petals_json_which_stays_untouched(tmp_path: Path) -> None:
    ws = workspace_with_plugins(tmp_path)
    petals = (ws / "data" / "storage" / "petal" / "petals.json").read_bytes()
    (ws / WORKSPACE_DATA).mkdir(parents=True)
    (ws / WORKSPACE_DATA / "plugins.json").write_text('{"enabled": {"off": true, "writer": false}}')
    manager = PluginManager(HostConfig(hot_reload=False, siyuan_poll_interval=0), workspace=ws)
    await manager.start()
    try:
        assert sorted(manager.plugins) == ["off"]
    finally:
        await manager.close()
    assert (ws / "data" / "storage" / "petal" / "petals.json").read_bytes() == petals
