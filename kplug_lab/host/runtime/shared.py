"""State shared between a plugin's thread and the host loop, safe to read while it is written (issue 11, item 5).

A plugin binds and unbinds methods and registers tools on its own thread while the loop lists them; iterating a
plain dict there failed with "dictionary changed size during iteration". :class:`SharedDict` is copy-on-write:
each write (under a lock, so concurrent writers lose nothing) replaces the inner dict, and a read iterates the
dict of that moment, which is never changed again.
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

    def __init__(self) -> None:
        self._data: dict[K, V] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> dict[K, V]:
        """The current contents (do not change it)."""
        return self._data

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            data = dict(self._data)
            data[key] = value
            self._data = data

    def __delitem__(self, key: K) -> None:
        with self._lock:
            data = dict(self._data)
            del data[key]
            self._data = data

    def discard(self, key: K) -> None:
        """Drop ``key`` if it is there."""
        with self._lock:
            if key in self._data:
                data = dict(self._data)
                del data[key]
                self._data = data

    def pop(self, key: K, *default: V) -> V:  # type: ignore[override]
        with self._lock:
            if key not in self._data:
                if default:
                    return default[0]
                raise KeyError(key)
            data = dict(self._data)
            value = data.pop(key)
            self._data = data
            return value

    def remove_if(self, predicate: Callable[[K, V], bool]) -> list[K]:
        """Drop every entry for which ``predicate(key, value)`` is true, in one write; returns their keys."""
        with self._lock:
            gone = [k for k, v in self._data.items() if predicate(k, v)]
            if gone:
                self._data = {k: v for k, v in self._data.items() if k not in set(gone)}
            return gone

    def clear(self) -> None:
        with self._lock:
            self._data = {}

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> KeysView[K]:
        return self._data.keys()

    def values(self) -> ValuesView[V]:
        return self._data.values()

    def items(self) -> ItemsView[K, V]:
        return self._data.items()

    def __repr__(self) -> str:
        return f"SharedDict({self._data!r})"
