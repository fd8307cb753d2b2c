"""The worker pool: `workers` threads serving a priority queue of tasks.

Lower priorities go first; the runner gives an image's later steps lower priorities than other
images' earlier ones, so records complete early and memory stays flat. Tasks are callables that
handle their own errors; a task that raises anyway is handed to `on_error`. Once the stop event is
set, queued tasks are dropped (left for the next run).

While the workers run, the garbage collector's first threshold is raised to GC_THRESHOLD (and put
back at shutdown): each request in flight holds young objects across collections, so at 64
workers CPython's default (700) collected about 250 times in 4,000 requests, 0.3-1.2 s with the
GIL held; at 7,000, 15 times, and the run sent about 2.5% more requests a second, 0.1 ms of CPU a
request less (bench/throughput.py, paired runs, 2026-11-30). What a collection finds is the same,
later: a run leaves a few dozen objects in cycles.
"""

from __future__ import annotations

import gc
import itertools
import queue
import threading
from collections.abc import Callable

Task = Callable[[], None]
_LAST = 10**9
"""the priority of the sentinels that end the workers: after every task"""
GC_THRESHOLD = 7000
"""the collector's first threshold (allocations less deallocations) while the workers run"""


class WorkerPool:
    def __init__(self, workers: int, stop: threading.Event,
                 on_error: Callable[[Task, Exception], None]) -> None:
        self.stop = stop
        self._on_error = on_error
        self._queue: queue.PriorityQueue[tuple[int, int, Task | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._outstanding = 0
        self._idle = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
                         for i in range(workers)]
        self._gc_threshold: tuple[int, int, int] | None = None
        """the collector's thresholds before `start` raised them (None: left as they were)"""

    def start(self) -> None:
        thresholds = gc.get_threshold()
        if 0 < thresholds[0] < GC_THRESHOLD:  # 0: collection off; higher: set so by the caller
            self._gc_threshold = thresholds
            gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, task: Task) -> None:
        with self._idle:
            self._outstanding += 1
        self._queue.put((priority, next(self._order), task))

    def wait(self) -> None:
        """Until every task submitted (and every task they submit) is done, or the stop event."""
        with self._idle:
            while self._outstanding > 0 and not self.stop.is_set():
                self._idle.wait(0.2)

    def shutdown(self) -> None:
        """End the workers once the tasks they are running are done; queued tasks are dropped."""
        self.stop.set()
        for _ in self._threads:
            self._queue.put((_LAST, next(self._order), None))
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None

    def _work(self) -> None:
        while True:
            _, _, task = self._queue.get()
            if task is None:
                return
            try:
                if not self.stop.is_set():
                    task()
            except Exception as exc:
                self._on_error(task, exc)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    if self._outstanding == 0:  # waking the main thread per task costs CPU
                        self._idle.notify_all()
