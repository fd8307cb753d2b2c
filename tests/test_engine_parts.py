"""The engine's small parts on their own: the tracker's counting, the worker pool, the image
cache."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from auto_label.ledger.events import ImageSeeded, StepCompleted
from auto_label.pipelines.engine.image_cache import ImageCache
from auto_label.pipelines.engine.pool import GC_THRESHOLD, WorkerPool
from auto_label.pipelines.engine.progress import NullProgress, RunSummary
from auto_label.pipelines.engine.tracker import Tracker


def completion(step="0", source="") -> StepCompleted:
    return StepCompleted(image_id="img", step=step, fingerprint="f", output={}, output_version=1,
                         output_hash="h", source=source)


def test_completions_count_when_stored_and_a_refused_one_is_a_failure_never_completed():
    summary = RunSummary("r", "image_grounding", Path("/out"), 2,
                         [("0", "step0_expression_extraction")])
    tracker = Tracker(summary, NullProgress())
    seed = ImageSeeded(image_id="img", path="p", sha256="s", width=1, height=1, size=1,
                       mtime_ns=1)
    tracker.committed([seed, completion(), completion(source="in.jsonl:3")], [])
    assert summary.counts["0"] == {"completed": 1}  # an imported output is not an outcome
    tracker.committed([], [completion()])
    assert summary.counts["0"] == {"completed": 1, "failed": 1}
    assert summary.failures == {"duplicate_completion": 1}
    assert "was not recorded" in summary.examples[0]
    assert not summary.complete


def test_the_pool_runs_lower_priorities_first_and_drops_queued_work_on_stop():
    stop = threading.Event()
    errors: list[Exception] = []
    pool = WorkerPool(1, stop, lambda task, exc: errors.append(exc))
    order: list[str] = []
    gate = threading.Event()
    pool.submit(0, gate.wait)  # holds the only worker while the rest are queued
    pool.start()
    for name, priority in (("late", 5), ("early", -2), ("middle", 1)):
        pool.submit(priority, lambda name=name: order.append(name))

    def boom() -> None:
        raise RuntimeError("boom")

    pool.submit(9, boom)
    gate.set()
    pool.wait()
    assert order == ["early", "middle", "late"]
    assert [str(e) for e in errors] == ["boom"]
    stop.set()
    pool.submit(0, lambda: order.append("after stop"))
    pool.shutdown()
    assert order[-1] == "late"


def test_the_image_cache_keeps_the_most_recent_images(tmp_path):
    from PIL import Image

    from auto_label.backends.base import ModelFrame
    from auto_label.pipelines.images.decode import IngestSettings

    path = tmp_path / "a.png"
    Image.new("RGB", (40, 20), (9, 9, 9)).save(path)
    cache = ImageCache(2, IngestSettings(), ModelFrame("xyxy_pixel", max_image_side=10))
    for image_id in ("a", "b", "c"):
        prepared = cache.get(image_id, path, sha256="s")
    assert prepared.sent_size == (10, 5) and prepared.original_size == (40, 20)
    path.unlink()  # "b" and "c" are kept; "a" would need the file
    assert cache.get("c", path, sha256="s") is prepared
    cache.get("b", path, sha256="s")
    with pytest.raises(OSError):  # evicted: it has to be read again, and the file is gone
        cache.get("a", path, sha256="s")


def test_the_pool_collects_less_often_while_it_runs_and_puts_the_thresholds_back():
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    try:
        gc.set_threshold(700, 11, 12)
        stop = threading.Event()
        pool = WorkerPool(2, stop, lambda task, exc: None)
        pool.submit(0, lambda: seen.append(gc.get_threshold()))
        pool.start()
        pool.wait()
        pool.shutdown()
        assert seen == [(GC_THRESHOLD, 11, 12)]
        assert gc.get_threshold() == (700, 11, 12)
        for first in (50_000, 0):  # a caller's own setting, or collection off, is kept
            gc.set_threshold(first, 10, 10)
            pool = WorkerPool(1, threading.Event(), lambda task, exc: None)
            pool.submit(0, lambda: seen.append(gc.get_threshold()))
            pool.start()
            pool.wait()
            pool.shutdown()
            assert seen[-1] == gc.get_threshold() == (first, 10, 10)
    finally:
        gc.set_threshold(*before)
