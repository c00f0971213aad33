"""What outlives a host process: the durable store (queues, key-value state, schedules; :mod:`.store`), the
lock that lets one host at a time own a workspace (:mod:`.lock`), and where these files live: outside SiYuan's
synced tree (:mod:`.places`). Nothing here knows about plugins' JavaScript or the wire; ``kplug_lab.host``
builds on it."""

from .lock import STANDBY_POLL_S, HostLock
from .places import default_data_dir, migrate_legacy_store
from .store import PRAGMAS, DurableStore, ScheduleSpec, next_slot, parse_schedule

__all__ = ["PRAGMAS", "STANDBY_POLL_S", "DurableStore", "HostLock", "ScheduleSpec", "default_data_dir",
           "migrate_legacy_store", "next_slot", "parse_schedule"]
