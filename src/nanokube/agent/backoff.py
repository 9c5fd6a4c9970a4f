"""Kubernetes' container restart back-off (kubelet's flowcontrol.Backoff as used by doBackOff).

The first crash restarts at once and arms a delay of ``base``; every further crash within the delay
window is held back (CrashLoopBackOff) and each restart doubles the delay up to ``cap`` (5 min). An entry
untouched for twice the cap starts over from ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF = 300.0


def go_duration(seconds: float) -> str:
    """Go's time.Duration String() for whole and fractional seconds: 10s, 1m20s, 5m0s, 500ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    frac = seconds - whole
    mins, secs = divmod(whole, 60)
    hours, mins = divmod(mins, 60)
    sec_text = f"{secs + frac:g}s"
    if hours:
        return f"{hours}h{mins}m{sec_text}"
    if mins:
        return f"{mins}m{sec_text}"
    return sec_text


@dataclass
class Backoff:
    base: float = 10.0
    cap: float = MAX_BACKOFF
    delay: float = 0.0
    last_update: float | None = None

    def remaining(self, finished_at: float, now: float) -> float:
        """Seconds still to wait before restarting a container that finished at ``finished_at``."""
        if self.last_update is None or self.delay == 0.0:
            return 0.0
        return max(0.0, self.delay - (now - finished_at))

    def restarted(self, now: float) -> None:
        """Record a restart: arm or double the delay."""
        if self.last_update is None or now - self.last_update > 2 * self.cap:
            self.delay = self.base
        else:
            self.delay = min(self.delay * 2, self.cap)
        self.last_update = now
