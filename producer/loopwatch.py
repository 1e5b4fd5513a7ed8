"""How long the gateway's event loop stalls, and how long its garbage collections take.

A stall is time the loop could not run a callback that was due: a timer set
to wake every :data:`TICK_S` measures how late it wakes (a callback that ran
long, the interpreter lock held by another thread, or the process not given
a CPU). Every collection is timed through ``gc.callbacks``, by generation.
Read by the gateway's ``/metrics`` (``producer/metrics.py``) and printed by
``bench.load``, whose baseline is the same watch on an empty loop in another
process of the same run (``python -m producer.loopwatch SECONDS``): what the
machine alone does to a loop.

Only the longest stalls are kept (:data:`KEPT`), and counts over 5 and 50 ms:
memory and work stay the same however long the gateway runs.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import sys
import time
from typing import Any

#: How often the watch wakes: fine enough to see a 5 ms stall most of the time, and
#: 100 wake-ups a second cost the idle gateway well under 1 % of a core.
TICK_S = 0.01
#: How many of the longest stalls are kept.
KEPT = 5
#: Stalls counted above these (seconds).
OVER = (0.005, 0.05)


class LoopWatch:
    """Stalls of the running loop and garbage-collection pauses, since :meth:`start`."""

    def __init__(self) -> None:
        self.longest: list[float] = []  # a min-heap of the KEPT longest stalls
        self.over = dict.fromkeys(OVER, 0)
        self.ticks = 0
        #: The longest collection of each generation, and how many there were.
        self.gc_longest = [0.0, 0.0, 0.0]
        self.gc_count = [0, 0, 0]
        self._gc_began = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch the running loop and every collection of this process."""
        self._task = asyncio.get_running_loop().create_task(self._watch())
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def reset(self) -> None:
        """Forget what was measured (start-up's stalls and its full collection)."""
        self.longest.clear()
        self.over = dict.fromkeys(OVER, 0)
        self.ticks = 0
        self.gc_longest = [0.0, 0.0, 0.0]
        self.gc_count = [0, 0, 0]

    def longest_stall(self) -> float:
        return max(self.longest, default=0.0)

    async def _watch(self) -> None:
        clock = time.perf_counter
        while True:
            due = clock() + TICK_S
            await asyncio.sleep(TICK_S)
            late = clock() - due
            self.ticks += 1
            for limit in OVER:
                if late > limit:
                    self.over[limit] += 1
            if len(self.longest) < KEPT:
                heapq.heappush(self.longest, late)
            elif late > self.longest[0]:
                heapq.heapreplace(self.longest, late)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
            return
        generation = int(info["generation"])
        took = time.perf_counter() - self._gc_began
        self.gc_count[generation] += 1
        self.gc_longest[generation] = max(self.gc_longest[generation], took)

    def summary(self) -> str:
        """One line: the longest stalls, how many beyond each limit, the longest
        collection of each generation."""
        stalls = ", ".join(f"{s * 1000:.1f}" for s in sorted(self.longest, reverse=True))
        over = ", ".join(f"> {limit * 1000:.0f} ms: {n}" for limit, n in self.over.items())
        collections = ", ".join(
            f"gen {g} {self.gc_count[g]} (longest {self.gc_longest[g] * 1000:.1f} ms)"
            for g in range(3)
        )
        return f"longest stalls {stalls} ms over {self.ticks} ticks ({over}); {collections}"


async def _baseline(seconds: float) -> str:
    watch = LoopWatch()
    watch.start()
    await asyncio.sleep(seconds)
    watch.stop()
    return watch.summary()


if __name__ == "__main__":  # the baseline: an empty loop watched in its own process
    print(asyncio.run(_baseline(float(sys.argv[1]))), flush=True)
