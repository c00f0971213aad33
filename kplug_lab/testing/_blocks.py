"""The fake kernel's block store: notebooks, documents and blocks in a real SQLite ``blocks`` table.

SiYuan keeps its content in ``.sy`` files and mirrors it into ``temp/siyuan.db`` for queries. Here the SQLite
table *is* the store, so whatever the block and attribute endpoints change is what ``/api/query/sql`` sees at
once. Markdown is understood only as far as tests need: one block per paragraph, with headings, lists, quotes
and fenced code recognised by their first line.
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import BlockError

__all__ = ["BLOCK_COLUMNS", "BlockError", "BlockStore", "Notebook", "new_id"]

#: SiYuan's ``blocks`` columns, in its order
BLOCK_COLUMNS = (
    "id", "parent_id", "root_id", "hash", "box", "path", "hpath", "name", "alias", "memo", "tag", "content",
    "fcontent", "markdown", "length", "type", "subtype", "ial", "sort", "created", "updated",
)

_SCHEMA = """
CREATE TABLE blocks (
    id TEXT PRIMARY KEY, parent_id TEXT, root_id TEXT, hash TEXT, box TEXT, path TEXT, hpath TEXT,
    name TEXT, alias TEXT, memo TEXT, tag TEXT, content TEXT, fcontent TEXT, markdown TEXT, length INTEGER,
    type TEXT, subtype TEXT, ial TEXT, sort INTEGER, created TEXT, updated TEXT
);
CREATE TABLE attributes (
    id TEXT, name TEXT, value TEXT, type TEXT, block_id TEXT, root_id TEXT, box TEXT, path TEXT
);
"""

# block attributes the kernel owns; everything else a client sets must be custom-*, name, alias, memo, ...
_BUILTIN_ATTRS = ("id", "updated", "title", "type")
_ID_ALPHABET = string.ascii_lowercase + string.digits
# sqlite3 authorizer action codes that a read-only query may use
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def new_id(now: float | None = None) -> str:
    """A SiYuan node id: ``YYYYMMDDHHMMSS-`` and 7 random lowercase letters or digits."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now if now is not None else time.time()))
    return stamp + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(7))


def _stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S")


@dataclass
class Notebook:
    id: str
    name: str
    icon: str = ""
    sort: int = 0
    closed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "icon": self.icon, "sort": self.sort, "sortMode": 15,
                "closed": self.closed, "newFlashcardCount": 0, "dueFlashcardCount": 0, "flashcardCount": 0}


@dataclass
class _Parsed:
    type: str
    subtype: str
    content: str
    markdown: str


_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")
_TAGS = re.compile(r"<[^>]+>")


def parse_markdown(text: str) -> list[_Parsed]:
    """Split markdown into top-level blocks (blank-line separated; a fenced code block is kept whole)."""
    blocks: list[_Parsed] = []
    chunk: list[str] = []
    in_fence = False

    def flush() -> None:
        if chunk:
            blocks.append(_classify("\n".join(chunk)))
            chunk.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip().startswith("```"):
            if in_fence:
                chunk.append(line)
                flush()
                in_fence = False
                continue
            flush()
            in_fence = True
        if not in_fence and not line.strip():
            flush()
            continue
        chunk.append(line)
    flush()
    return blocks


def _classify(md: str) -> _Parsed:
    first = md.split("\n", 1)[0]
    if m := _HEADING.match(first):
        return _Parsed("h", f"h{len(m.group(1))}", m.group(2).strip(), md)
    if first.strip().startswith("```"):
        body = md.split("\n")[1:]
        if body and body[-1].strip().startswith("```"):
            body = body[:-1]
        return _Parsed("c", "", "\n".join(body), md)
    if m := _LIST.match(first):
        kind = "o" if m.group(2)[0].isdigit() else "u"
        items = [_LIST.sub("", ln) for ln in md.split("\n")]
        return _Parsed("l", kind, "\n".join(items), md)
    if first.startswith(">"):
        return _Parsed("b", "", "\n".join(ln.lstrip(">").strip() for ln in md.split("\n")), md)
    return _Parsed("p", "", md.strip(), md)


def dom_to_markdown(dom: str) -> str:
    """The text of a DOM fragment (``dataType: "dom"``), one paragraph per block-level element."""
    text = re.sub(r"</(p|div|h[1-6]|li|blockquote|pre)>", "\n\n", dom, flags=re.I)
    return html.unescape(_TAGS.sub("", text)).strip()


def _ial(attrs: dict[str, str]) -> str:
    inner = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    return "{: " + inner + "}"


class BlockStore:
    """Notebooks, documents and blocks; safe to use from several threads (one lock, one connection)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self.notebooks: dict[str, Notebook] = {}
        self._attrs: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- queries ------------------------------------------------------------------------------------

    def query(self, stmt: str) -> list[dict[str, Any]]:
        """Run a read-only SQL statement (``/api/query/sql``); anything that would write is refused."""
        if not isinstance(stmt, str) or not stmt.strip():
            raise BlockError("stmt must be a non-empty SQL string")

        def read_only(action: int, *_: Any) -> int:
            return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

        with self._lock:
            self._db.set_authorizer(read_only)
            try:
                cur = self._db.execute(stmt)
                return [dict(row) for row in cur.fetchall()]
            except sqlite3.DatabaseError as exc:
                if "not authorized" in str(exc):
                    raise BlockError(f"only read-only SELECT statements are allowed: {exc}") from None
                raise BlockError(str(exc)) from None
            finally:
                self._db.set_authorizer(None)

    def block(self, block_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT * FROM blocks WHERE id = ?", (block_id,)).fetchone()
        if row is None:
            raise BlockError(f"block [{block_id}] not found")
        return dict(row)

    def children(self, block_id: str) -> list[dict[str, Any]]:
        self.block(block_id)
        with self._lock:
            rows = self._db.execute("SELECT * FROM blocks WHERE parent_id = ? ORDER BY sort", (block_id,))
            return [dict(r) for r in rows.fetchall()]

    def attrs(self, block_id: str) -> dict[str, str]:
        row = self.block(block_id)
        out = {"id": row["id"]}
        if row["type"] == "d":
            out["title"] = row["content"]
            out["type"] = "doc"
        out.update(self._attrs.get(block_id, {}))
        out["updated"] = row["updated"]
        return out

    def kramdown(self, block_id: str) -> str:
        row = self.block(block_id)
        if row["type"] == "d":
            parts = [self.kramdown(c["id"]) for c in self.children(block_id)]
            return "\n\n".join([*parts, row["ial"]])
        return f"{row['markdown']}\n{row['ial']}"

    def dom(self, block_id: str) -> str:
        row = self.block(block_id)
        text = html.escape(row["content"])
        dom_type = _DOM_TYPES.get(row["type"], "NodeParagraph")
        css = _DOM_CLASSES.get(row["type"], "p")
        return (f'<div data-node-id="{row["id"]}" data-node-index="1" data-type="{dom_type}" class="{css}"'
                f' updated="{row["updated"]}"><div contenteditable="true" spellcheck="false">{text}</div>'
                '<div class="protyle-attr" contenteditable="false"></div></div>')

    def hpath_of(self, block_id: str) -> str:
        return str(self.block(block_id)["hpath"])

    def hpath_by_path(self, notebook: str, path: str) -> str:
        if notebook not in self.notebooks:
            raise BlockError(f"notebook [{notebook}] not found")
        with self._lock:
            row = self._db.execute("SELECT hpath FROM blocks WHERE box = ? AND path = ? AND type = 'd'",
                                   (notebook, path)).fetchone()
        if row is None:
            raise BlockError(f"document [{path}] not found in notebook [{notebook}]")
        return str(row["hpath"])

    # ---- changes ------------------------------------------------------------------------------------

    def add_notebook(self, name: str, notebook_id: str | None = None) -> Notebook:
        nb = Notebook(notebook_id or new_id(), name, sort=len(self.notebooks))
        self.notebooks[nb.id] = nb
        return nb

    def create_doc(self, notebook: str, hpath: str, markdown: str = "") -> str:
        """A document at human-readable path ``hpath`` (``/Parent/Title``; parents must exist)."""
        if notebook not in self.notebooks:
            raise BlockError(f"notebook [{notebook}] not found")
        if not hpath.startswith("/") or hpath == "/":
            raise BlockError(f"document path must look like /Title, got {hpath!r}")
        parent_hpath, _, title = hpath.rstrip("/").rpartition("/")
        path_prefix = ""
        if parent_hpath:
            with self._lock:
                row = self._db.execute("SELECT path FROM blocks WHERE box = ? AND hpath = ? AND type = 'd'",
                                       (notebook, parent_hpath)).fetchone()
            if row is None:
                raise BlockError(f"parent document [{parent_hpath}] not found")
            path_prefix = str(row["path"])[: -len(".sy")]
        doc_id = new_id()
        now = _stamp()
        self._insert_row({
            "id": doc_id, "parent_id": "", "root_id": doc_id, "box": notebook,
            "path": f"{path_prefix}/{doc_id}.sy", "hpath": hpath, "content": title, "markdown": "",
            "type": "d", "subtype": "", "sort": 0, "created": doc_id[:14], "updated": now,
        })
        for parsed in parse_markdown(markdown):
            self._add_child(doc_id, parsed, None)
        return doc_id

    def insert(self, parent_id: str, markdown: str, *, previous_id: str = "", next_id: str = "",
               append: bool = True) -> list[str]:
        """New blocks under ``parent_id``: after ``previous_id``, before ``next_id``, or at the end/start."""
        parent = self.block(parent_id)
        parsed = parse_markdown(markdown)
        if not parsed:
            raise BlockError("data contains no block")
        siblings = [c["id"] for c in self.children(parent["id"])]
        if previous_id:
            if previous_id not in siblings:
                raise BlockError(f"previous block [{previous_id}] is not a child of [{parent_id}]")
            at = siblings.index(previous_id) + 1
        elif next_id:
            if next_id not in siblings:
                raise BlockError(f"next block [{next_id}] is not a child of [{parent_id}]")
            at = siblings.index(next_id)
        else:
            at = len(siblings) if append else 0
        ids = []
        for offset, p in enumerate(parsed):
            ids.append(self._add_child(parent["id"], p, at + offset))
        return ids

    def parent_of(self, block_id: str) -> str:
        parent = self.block(block_id)["parent_id"]
        if not parent:
            raise BlockError(f"block [{block_id}] is a document and has no parent")
        return str(parent)

    def update(self, block_id: str, markdown: str) -> None:
        row = self.block(block_id)
        if row["type"] == "d":
            for child in self.children(block_id):
                self.delete(child["id"])
            for p in parse_markdown(markdown):
                self._add_child(block_id, p, None)
            self._touch(block_id)
            return
        parsed = parse_markdown(markdown)
        if len(parsed) != 1:
            raise BlockError(f"updateBlock expects exactly one block of markdown, got {len(parsed)}")
        p = parsed[0]
        self._write(block_id, content=p.content, fcontent=p.content, markdown=p.markdown, type=p.type,
                    subtype=p.subtype, length=len(p.content), hash=_hash(p.markdown))
        self._touch(block_id)

    def delete(self, block_id: str) -> None:
        row = self.block(block_id)
        if row["type"] == "d":
            raise BlockError(f"block [{block_id}] is a document; delete documents with the filetree API")
        for child in self.children(block_id):
            self.delete(child["id"])
        with self._lock:
            self._db.execute("DELETE FROM blocks WHERE id = ?", (block_id,))
            self._db.execute("DELETE FROM attributes WHERE block_id = ?", (block_id,))
        self._attrs.pop(block_id, None)
        self._resort(str(row["parent_id"]))

    def set_attrs(self, block_id: str, attrs: dict[str, Any]) -> None:
        row = self.block(block_id)
        if not isinstance(attrs, dict):
            raise BlockError("attrs must be an object of attribute names to strings")
        current = self._attrs.setdefault(block_id, {})
        for name, value in attrs.items():
            if not isinstance(value, str):
                raise BlockError(f"attribute [{name}] must be a string, got {type(value).__name__}")
            if name in _BUILTIN_ATTRS:
                raise BlockError(f"attribute [{name}] is managed by the kernel and cannot be set")
            if value == "":
                current.pop(name, None)
            else:
                current[name] = value
        with self._lock:
            self._db.execute("DELETE FROM attributes WHERE block_id = ?", (block_id,))
            self._db.executemany(
                "INSERT INTO attributes VALUES (?, ?, ?, 'b', ?, ?, ?, ?)",
                [(new_id(), k, v, block_id, row["root_id"], row["box"], row["path"]) for k, v in current.items()])
        self._write(block_id, name=current.get("name", ""), alias=current.get("alias", ""),
                    memo=current.get("memo", ""))
        self._touch(block_id)

    # ---- internals ----------------------------------------------------------------------------------

    def _add_child(self, parent_id: str, p: _Parsed, at: int | None) -> str:
        parent = self.block(parent_id)
        block_id = new_id()
        now = _stamp()
        self._insert_row({
            "id": block_id, "parent_id": parent_id, "root_id": parent["root_id"], "box": parent["box"],
            "path": parent["path"], "hpath": parent["hpath"], "content": p.content, "markdown": p.markdown,
            "type": p.type, "subtype": p.subtype, "sort": 1 << 30, "created": now, "updated": now,
        })
        siblings = [c["id"] for c in self.children(parent_id) if c["id"] != block_id]
        siblings.insert(len(siblings) if at is None else at, block_id)
        self._resort(parent_id, siblings)
        return block_id

    def _insert_row(self, values: dict[str, Any]) -> None:
        row: dict[str, Any] = {c: "" for c in BLOCK_COLUMNS}
        row.update(values)
        row["fcontent"] = row["content"] if row["type"] != "d" else ""
        row["length"] = len(row["content"])
        row["hash"] = _hash(row["markdown"] or row["content"])
        row["ial"] = self._ial_for(row)
        with self._lock:
            self._db.execute(f"INSERT INTO blocks VALUES ({', '.join('?' * len(BLOCK_COLUMNS))})",
                             [row[c] for c in BLOCK_COLUMNS])

    def _ial_for(self, row: dict[str, Any]) -> str:
        attrs = {"id": str(row["id"])}
        if row["type"] == "d":
            attrs["title"] = str(row["content"])
            attrs["type"] = "doc"
        attrs.update(self._attrs.get(str(row["id"]), {}))
        attrs["updated"] = str(row["updated"])
        return _ial(attrs)

    def _write(self, block_id: str, **values: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE blocks SET {cols} WHERE id = ?", [*values.values(), block_id])

    def _touch(self, block_id: str) -> None:
        self._write(block_id, updated=_stamp())
        self._write(block_id, ial=self._ial_for(self.block(block_id)))

    def _resort(self, parent_id: str, order: list[str] | None = None) -> None:
        if not parent_id:
            return
        if order is None:
            order = [c["id"] for c in self.children(parent_id)]
        with self._lock:
            self._db.executemany("UPDATE blocks SET sort = ? WHERE id = ?", [(i, b) for i, b in enumerate(order)])


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:7]


_DOM_TYPES = {"p": "NodeParagraph", "h": "NodeHeading", "l": "NodeList", "c": "NodeCodeBlock",
              "b": "NodeBlockquote", "d": "NodeDocument"}
_DOM_CLASSES = {"p": "p", "h": "h1", "l": "list", "c": "code-block", "b": "bq", "d": "protyle-wysiwyg"}
