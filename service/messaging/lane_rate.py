"""The completion rate behind a queue ETA: completions per second of time the lane was busy.

Dividing the last minute's completions by a fixed 60 s reads far too low after a start or an idle
spell (4 completions in the 2 s since the lane woke up are 2/s, not 0.07/s), so the ETA came out
tens of times too long. Each completion event carries when its request started and finished; the
time the lane was busy is the union of those spans within the window, and idle gaps — before the
first request, or between bursts — do not count. With fewer than MIN_COMPLETIONS there is too
little to go on, and the rate is unknown (the ETA is null) rather than a guess.
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 60.0
MIN_COMPLETIONS = 3
# Enough completions for a steady figure; bounds the work of a reading under a heavy load.
MAX_REMEMBERED = 2000


class LaneRate:
    """Recent completions of one lane as (started, finished) on this process's monotonic clock."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: deque[tuple[float, float]] = deque(maxlen=MAX_REMEMBERED)

    def add(self, finished: float, duration: float) -> None:
        """A completion seen at `finished`, whose request ran for `duration` seconds (0 if unknown)."""
        self._spans.append((finished - max(duration, 0.0), finished))

    def _forget_old(self, now: float) -> None:
        while self._spans and self._spans[0][1] < now - WINDOW_SECONDS:
            self._spans.popleft()

    def per_second(self, now: float) -> float | None:
        """Completions per busy second over the window, or None with too little to go on."""
        self._forget_old(now)
        if len(self._spans) < MIN_COMPLETIONS:
            return None
        # Spans arrive in order of finishing; a span starting after everything before it finished
        # opens a new busy period (the lane was idle in between).
        horizon = now - WINDOW_SECONDS
        busy = 0.0
        start, end = None, horizon
        for began, finished in self._spans:
            began = max(began, horizon)
            if start is None or began > end:
                if start is not None:
                    busy += end - start
                start, end = max(began, end), finished
            else:
                end = max(end, finished)
        if start is not None:
            busy += end - start
        # Completions can arrive faster than the clock moves (a burst from one fetch): a floor of a
        # millisecond per completion keeps the figure finite.
        busy = max(busy, 0.001 * len(self._spans))
        return len(self._spans) / busy
