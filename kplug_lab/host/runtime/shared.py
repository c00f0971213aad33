"""State shared between a plugin's thread and the host loop, safe to read while it is written (issue 11, item 5).

A plugin binds and unbinds methods and registers tools on its own thread while the loop lists them; iterating a
plain dict there failed with "dictionary changed size during iteration". :class:`SharedDict` changes its dict
under a lock, and every iteration goes over a copy taken under that lock: a write costs O(1) (a plugin binding in
a loop stays cheap), a listing O(n) on the reader's side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from typing import TypeVar

__all__ = ["SharedDict"]

K = TypeVar("K")
V = TypeVar("V")


class SharedDict(MutableMapping[K, V]):
    """A dict whose views and iterators are snapshots: writers on any thread never disturb a reader."""

    # the lock is held only for single dict operations and copies: no callback runs under it

    def __init__(self) -> None:
        self._data: dict[K, V] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> dict[K, V]:
        """A copy of the current contents."""
        with self._lock:
            return dict(self._data)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value

    def __delitem__(self, key: K) -> None:
        with self._lock:
            del self._data[key]

    def discard(self, key: K) -> None:
        """Drop ``key`` if it is there."""
        with self._lock:
            self._data.pop(key, None)

    def pop(self, key: K, *default: V) -> V:  # type: ignore[override]
        with self._lock:
            return self._data.pop(key, *default)

    def remove_if(self, predicate: Callable[[K, V], bool]) -> list[K]:
        """Drop every entry for which ``predicate(key, value)`` is true, in one write; returns their keys."""
        with self._lock:
            gone = [k for k, v in self._data.items() if predicate(k, v)]
            for k in gone:
                del self._data[k]
            return gone

    def clear(self) -> None:
        with self._lock:
            self._data = {}

    def __iter__(self) -> Iterator[K]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> KeysView[K]:
        return self.snapshot().keys()

    def values(self) -> ValuesView[V]:
        return self.snapshot().values()

    def items(self) -> ItemsView[K, V]:
        return self.snapshot().items()

    def __repr__(self) -> str:
        return f"SharedDict({self._data!r})"
