"""What outlives a host process: the durable store (queues, key-value state, schedules; :mod:`.store`) and the
lock that lets one host at a time own a workspace (:mod:`.lock`). Nothing here knows about plugins' JavaScript
or the wire; ``kplug_lab.host`` builds on it."""

from .lock import STANDBY_POLL_S, HostLock
from .store import PRAGMAS, DurableStore, ScheduleSpec, next_slot, parse_schedule

__all__ = ["PRAGMAS", "STANDBY_POLL_S", "DurableStore", "HostLock", "ScheduleSpec", "next_slot", "parse_schedule"]
