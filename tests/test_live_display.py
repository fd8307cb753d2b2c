"""The live display of `generate` and the end-of-run summary: the monitor's figures (rate over the
last minute, an ETA without cached work, tokens, cost, failed attempts, what the run waits for),
the timestamped plain lines with their stall line, the rich view, the Ctrl-C message."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import threading

import pytest
from rich.console import Console
from support import grounding_spec

from auto_label import generate
from auto_label.api import RunInfo, RunSummary, Snapshot, StepFigures, Tokens
from auto_label.backends.prices import Price, usage_cost
from auto_label.cli.app import Signals
from auto_label.cli.progress import PlainProgress, RichProgress
from auto_label.cli.summary import print_summary
from auto_label.ledger.events import AttemptFailed, RequestSent, ResponseReceived, Usage
from auto_label.pipelines.engine.monitor import Monitor
from auto_label.pipelines.engine.pacing import Pacer
from auto_label.sim import write_grounding_dataset

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
STEPS = (("0", "step0_expression_extraction"), ("1", "step1_grounding"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(clock: Clock, **kwargs) -> Monitor:
    return Monitor(RunInfo("image_grounding", steps=STEPS[:1]), clock=clock,
                   wall=lambda: 1.8e9 + clock.now, **kwargs)


def sent(request_id: str, image: str = "a", step: str = "0") -> RequestSent:
    return RequestSent(request_id=request_id, image_id=image, step=step, attempt=1,
                       fingerprint="f", backend="openai", model="m", parameters={}, prompt="p",
                       image_sha256="s", sent_width=1, sent_height=1)


def test_the_eta_counts_only_the_work_this_run_does_not_the_cached_steps():
    clock = Clock()
    watch = monitor(clock)
    watch.begin(100)
    for _ in range(60):  # a resume: 60 images were done before, reached at once
        watch.outcome("0", "cached")
    for _ in range(10):  # then one answer every 6 s
        clock.now += 6
        watch.outcome("0", "completed")
    snap = watch.snapshot()
    assert snap.steps[0].done == 70 and snap.left == 30
    assert snap.rate == pytest.approx(10.0)  # steps per minute, the cached ones left out
    assert snap.eta == pytest.approx(180.0)  # 30 steps at 10 a minute (not 30 / 70 a minute)


def test_the_rate_is_that_of_the_last_minute_so_a_stall_shows_at_once():
    clock = Clock()
    watch = monitor(clock)
    watch.begin(1000)
    for _ in range(60):  # one a second for a minute
        clock.now += 1
        watch.outcome("0", "completed")
    assert watch.snapshot().rate == pytest.approx(60.0)
    clock.now += 30  # then nothing for 30 s: the average since the start would say 40
    snap = watch.snapshot()
    assert snap.rate == pytest.approx(31.0)  # the completions of the last 60 s only
    assert snap.quiet == pytest.approx(30.0)
    clock.now += 61
    assert watch.snapshot().rate == 0 and watch.snapshot().eta is None


def test_requests_in_flight_tokens_cost_retries_and_the_wait_come_from_committed_events():
    clock = Clock()
    price = Price(2.0, 8.0)
    pacer = Pacer(None, clock=clock)
    watch = monitor(clock, price=price, completion_includes_thinking=True, pacer=pacer)
    watch.begin(3)
    watch.committed([sent("r1", "a"), sent("r2", "b"), sent("r3", "c")])
    assert watch.snapshot().in_flight == 3 and watch.snapshot().steps[0].in_flight == 3
    usage = Usage(prompt_tokens=1000, completion_tokens=300, thinking_tokens=200)
    watch.committed([
        ResponseReceived(request_id="r1", image_id="a", step="0", attempt=1, text="{}",
                         usage=usage, latency_s=0.1),
        AttemptFailed(request_id="r2", image_id="b", step="0", attempt=1, kind="rate_limited",
                      message="HTTP 429: slow down", retry_after_s=59.0, status_code=429),
    ])
    pacer.pause(59.0)  # what the executor does with the Retry-After
    snap = watch.snapshot()
    assert (snap.requests, snap.in_flight, snap.retrying) == (3, 1, 1)
    assert snap.tokens == Tokens(prompt=1000, answer=100, thinking=200)  # thinking billed once
    assert snap.cost == pytest.approx(usage_cost(price, 1000, 300, 200,
                                                 completion_includes_thinking=True))
    assert snap.cost == pytest.approx((1000 * 2.0 + 100 * 8.0 + 200 * 8.0) / 1e6)
    assert snap.retries == (("rate_limited", 1),)
    assert snap.waiting == "rate limited (HTTP 429): waiting 59 s (as the endpoint asked)"
    assert snap.last_error == "rate_limited: HTTP 429: slow down"
    watch.committed([sent("r4", "b")])  # the retry is sent
    assert watch.snapshot().retrying == 0
    clock.now += 60
    assert watch.snapshot().waiting == ""


def test_without_a_price_there_is_no_cost():
    watch = monitor(Clock())
    watch.committed([ResponseReceived(request_id="r", image_id="a", step="0", attempt=1,
                                      text="", usage=Usage(prompt_tokens=5), latency_s=0.1)])
    assert watch.snapshot().cost is None and watch.snapshot().tokens.prompt == 5


def plain_run(tmp_path, make_sim, *extra):
    sim = make_sim(retry_after=2.5)
    data = write_grounding_dataset(tmp_path / "data", 3, seed=41)
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_workers=1",
                          "image_grounding.workflow.progress_interval=0.5", *extra)
    sim.script(["rate_limit"])  # the first request: 429, Retry-After 2.5 s for the whole pool
    stream = io.StringIO()
    summary = generate(spec, progress=PlainProgress(stream=stream, stall_after=1.0))
    return summary, stream.getvalue().splitlines()


def test_plain_lines_are_timestamped_show_the_figures_and_say_why_nothing_moves(tmp_path,
                                                                               make_sim):
    summary, lines = plain_run(tmp_path, make_sim)
    assert summary.complete and lines
    assert all(STAMP.match(line) for line in lines), lines
    assert "image_grounding: openai sim-vlm at http://127.0.0.1:" in lines[0]
    assert any(line.endswith(f"results_dir: {tmp_path / 'out'}") for line in lines[:3])
    figures = [line for line in lines if "steps/min" in line]
    assert len(figures) >= 3  # every 0.5 s (workflow.progress_interval) during the wait
    stalls = [line for line in lines if "nothing finished for 00:00:0" in line]
    assert stalls, lines
    assert "rate limited (HTTP 429): waiting" in stalls[0]
    assert "(as the endpoint asked)" in stalls[0]
    assert any("last error at " in line and "rate_limited: HTTP 429" in line for line in lines)
    last, final = figures[-1], summary.final
    assert final is not None
    assert "step0_expression_extraction 3/3 | step1_grounding 3/3" in last
    assert f"{summary.requests} requests" in last and summary.requests == final.requests == 7
    assert f"tokens {final.tokens.prompt:,} prompt, {final.tokens.answer:,} answer" in last
    assert "failed attempts: rate_limited 1" in last
    assert re.search(r"elapsed 00:00:0\d,", last)
    conn = sqlite3.connect(tmp_path / "out" / "ledger.db")
    (prompt,) = conn.execute("SELECT SUM(json_extract(body, '$.usage.prompt_tokens')) "
                             "FROM events WHERE type = 'response_received'").fetchone()
    conn.close()
    assert final.tokens.prompt == prompt > 0


def test_the_terminal_view_shows_the_header_the_wait_and_failed_apart_from_done(tmp_path,
                                                                                make_sim):
    sim = make_sim(retry_after=1.5)
    data = write_grounding_dataset(tmp_path / "data", 3, seed=42)
    (data.root / data.records[0]["image_path"]).unlink()  # its step 0 fails, step 1 skipped
    spec = grounding_spec(tmp_path / "out", data.root, sim.openai_base_url,
                          "image_grounding.workflow.max_workers=1")
    sim.script(["rate_limit"])
    console = Console(record=True, force_terminal=True, width=120)
    summary = generate(spec, progress=RichProgress(console, refresh=20))
    text = console.export_text()
    frames = text.split("image_grounding: openai sim-vlm at ")
    assert len(frames) > 3  # redrawn as the run went
    assert any("rate limited (HTTP 429): waiting" in frame for frame in frames)
    last = frames[-1]
    assert "1 worker, 3 images x 2 steps" in last
    assert f"results_dir: {tmp_path / 'out'}" in last
    assert "input: input_jsonl " in last
    step0 = next(line for line in last.splitlines() if "step0_expression_extraction" in line)
    step1 = next(line for line in last.splitlines() if "step1_grounding" in line)
    assert re.search(r" 2/3 1 failed\b", step0), step0  # failed is not done
    assert re.search(r" 2/3 1 skipped\b", step1), step1
    assert summary.counts["0"]["failed"] == 1 and summary.counts["0"]["completed"] == 2
    assert f"{summary.requests} requests" in last
    assert "failed attempts: rate_limited 1" in last
    assert "cost unknown (no price for sim-vlm)" in last
    # the plain log says the same of the same figures
    plain = PlainProgress(stream=io.StringIO())
    assert summary.final is not None
    line = plain.line(summary.final)
    assert "step0_expression_extraction 2/3 (1 failed)" in line
    assert "step1_grounding 2/3 (1 skipped)" in line


def test_the_summary_shows_the_figures_and_prints_messages_whole_and_as_text():
    long = ("img-0001 step 0 (step0_expression_extraction): HTTP 400: [/] the request was "
            "rejected because [bold]this[/bold] prompt is far longer than eighty columns")
    summary = RunSummary("run", "image_grounding", __import__("pathlib").Path("/out"), 3,
                         list(STEPS), requests=9, examples=[long])
    summary.failures["request_rejected"] = 1
    summary.final = Snapshot(elapsed=3725.4, images=3, requests=9,
                             tokens=Tokens(12345, 678, 9), cost=0.0123,
                             retries=(("rate_limited", 4), ("server_error", 1)),
                             steps=tuple(StepFigures(n, name) for n, name in STEPS))
    console = Console(record=True, width=80, force_terminal=False)
    print_summary(console, summary)
    text = console.export_text()
    assert "elapsed 01:02:05, requests sent: 9" in text
    assert "tokens 12,345 prompt, 678 answer, 9 thinking, cost $0.0123" in text
    assert "failed attempts: rate_limited 4, server_error 1" in text
    assert f"  - {long}\n" in text  # one line, not cut at 80 columns, its brackets kept
    assert "[dim]" not in text


def test_the_ctrl_c_message_goes_through_the_display():
    said: list[str] = []
    stop = threading.Event()
    with Signals(stop, say=said.append):
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.is_set()
    assert said == ["SIGINT: finishing the requests in flight (again to quit at once)..."]
