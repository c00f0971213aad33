"""``setTimeout`` / ``setInterval``: the timers live in the host (the plugin's actor fires them as jobs)."""

from __future__ import annotations

from ...errors import HostOpError
from ..runtime.context import Capability, Op

__all__ = ["MAX_TIMERS", "TimerOps"]

#: live timers one plugin may have: they live in the host, outside the sandbox's memory limit
MAX_TIMERS = 10_000


class TimerOps(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"timer_set": self.timer_set, "timer_clear": self.timer_clear}

    def timer_set(self, timer_id: int, delay_ms: float) -> None:
        timers = self.ctx.timers
        if timers is not None:
            if timers.pending_timers() >= MAX_TIMERS and not timers.is_armed(int(timer_id)):
                raise HostOpError(f"too many timers: {MAX_TIMERS} are pending; clear some before setting more")
            timers.arm_timer(int(timer_id), max(0.0, float(delay_ms or 0)) / 1000.0)

    def timer_clear(self, timer_id: int) -> None:
        timers = self.ctx.timers
        if timers is not None:
            timers.clear_timer(int(timer_id))
