"""The live display of `generate`, the summary and the help: the monitor's figures (rate over the
last minute of active time, an ETA with the wait and without cached work, tokens, cost, retries,
the wait in force), plain lines and stalls, the rich view at 80 columns, formats, Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from rich.console import Console
from support import grounding_overrides, grounding_spec
from test_resume import write_spec
from typer.testing import CliRunner

from auto_label import generate
from auto_label.api import RunInfo, RunSummary, Snapshot, StepFigures, Tokens
from auto_label.backends.prices import Price, usage_cost
from auto_label.cli import figures as shown
from auto_label.cli.app import Signals
from auto_label.cli.live_view import render
from auto_label.cli.main import app
from auto_label.cli.progress import PlainProgress, RichProgress
from auto_label.cli.summary import print_summary
from auto_label.estimate import usd
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


def failed(request_id: str, wait: float, *, image: str = "a", kind: str = "rate_limited",
           status: int = 429, message: str = "HTTP 429: slow down",
           at: float | None = None) -> AttemptFailed:
    return AttemptFailed(request_id=request_id, image_id=image, step="0", attempt=1, kind=kind,
                         message=message, retry_after_s=wait, status_code=status,
                         at=time.time() if at is None else at)


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
    assert re.fullmatch(r"waiting 59 s: rate limited \(HTTP 429\) at \d\d:\d\d:\d\d asked "
                        r"for 59 s", snap.waiting), snap.waiting
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
    figures = [line for line in lines if " | elapsed " in line]
    assert len(figures) >= 3  # every 0.5 s (workflow.progress_interval) during the wait
    stalls = [line for line in lines if "nothing finished for 00:00:0" in line]
    assert stalls, lines
    assert re.search(r"waiting \d s: rate limited \(HTTP 429\) at [\d:]{8} asked for [\d.]+ s",
                     stalls[0]), stalls[0]
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
    assert any(re.search(r"waiting \d s: rate limited \(HTTP 429\) at ", frame)
               for frame in frames)
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


def test_a_wait_is_left_out_of_the_rate_and_added_to_the_eta():
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    watch = monitor(clock, pacer=pacer)
    watch.begin(1000)
    for _ in range(30):  # one step every 2 s for a minute: 30 steps/min
        clock.now += 2
        watch.outcome("0", "completed")
    pacer.pause(75.0)  # a 429 asks the whole pool to wait 75 s
    watch.committed([sent("r1"), failed("r1", 75.0)])
    clock.now += 1
    during = watch.snapshot()
    assert during.pause == pytest.approx(74.0)
    assert during.rate == pytest.approx(30.0)  # waiting is not slowness
    assert during.eta == pytest.approx(74.0 + 60.0 * 970 / 30.0)  # the rest of the wait first
    clock.now += 74  # the wait is over: a rate over the clock's last minute would say 0, then
    rates = []       # 1, 2, 3 steps/min (ETA 16 h, 8 h, 5 h) while the run goes as fast as before
    for _ in range(3):
        clock.now += 2
        watch.outcome("0", "completed")
        rates.append(watch.snapshot().rate)
    assert rates == [pytest.approx(31.0), pytest.approx(31.0), pytest.approx(31.0)]
    assert watch.snapshot().pause == 0


def test_too_few_steps_to_measure_say_eta_unknown_not_a_wild_figure():
    clock = Clock()
    watch = monitor(clock)
    watch.begin(500)
    clock.now += 2
    watch.outcome("0", "completed")  # 1 step in 2 s would read 30 steps/min, ETA 16 min
    snap = watch.snapshot()
    assert snap.rate is None and snap.eta is None
    assert "rate unknown (too few steps finished yet), ETA unknown," in shown.activity(snap)
    for _ in range(4):
        clock.now += 2
        watch.outcome("0", "completed")
    assert watch.snapshot().rate == pytest.approx(30.0)  # 5 steps in 10 s
    slow = monitor(clock)
    slow.begin(10)
    for _ in range(2):  # a slow model: 2 steps in a whole minute is a measure
        clock.now += 30
        slow.outcome("0", "completed")
    assert slow.snapshot().rate == pytest.approx(2.0)
    assert slow.snapshot().eta == pytest.approx(4 * 60.0)


def test_the_wait_is_named_after_the_attempt_that_set_it_not_a_later_shorter_one():
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    watch = monitor(clock, pacer=pacer)
    watch.begin(10)
    pacer.pause(75.0)
    watch.committed([sent("r1"), failed("r1", 75.0, at=1.8e9)])
    clock.now += 10
    pacer.pause(1.0)  # a later 503 asks for 1 s: the 75 s wait still holds
    watch.committed([sent("r2", "b"), failed("r2", 1.0, image="b", kind="unavailable",
                                             status=503, message="HTTP 503: overloaded")])
    snap = watch.snapshot()
    at = time.strftime("%H:%M:%S", time.localtime(1.8e9))
    assert snap.waiting == f"waiting 65 s: rate limited (HTTP 429) at {at} asked for 75 s"
    assert snap.last_error == "unavailable: HTTP 503: overloaded"
    assert shown.last_error(snap).startswith("last error at ")


@pytest.mark.parametrize(("value", "text"), [
    (1234.5601, "$1,234.56"), (4.0, "$4.00"), (0.0200493, "$0.0200"), (0.0136, "$0.0136"),
    (0.00004, "<$0.0001"), (0.0, "$0.0000"), (0.99996, "$1.00")])
def test_every_cost_has_one_format(value, text):
    assert usd(value) == shown.usd(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (87.0, "87"), (109.4, "109"), (1234.4, "1,234"), (9.96, "10"), (4.04, "4.0"), (0.5, "0.5")])
def test_rates_are_whole_from_ten_up_and_one_decimal_below(value, text):
    assert shown.per_minute(value) == text


def test_the_live_view_wraps_at_80_columns_and_loses_no_figure():
    info = RunInfo("image_referring_expression", backend="gemini", workers=4, images=1300,
                   model="gemini-3.1-flash-lite-preview", steps=STEPS, priced=True,
                   endpoint="https://generativelanguage.googleapis.com",
                   inputs=(("image_dir", "/data/some/rather/long/path/to/the/images"),))
    snap = Snapshot(elapsed=75, images=1300, requests=1180, in_flight=1, retrying=2, rate=87.0,
                    eta=900.0, tokens=Tokens(123456, 7890, 12), cost=0.0136,
                    retries=(("rate_limited", 12), ("server_error", 3)),
                    waiting="waiting 74 s: rate limited (HTTP 429) at 03:40:12 asked for 75 s",
                    last_error="server_error: HTTP 500: An internal error has occurred. "
                               "Please retry.", last_error_at=1.8e9,
                    steps=(StepFigures("0", "step0_expression_extraction", completed=1000,
                                       failed=12, in_flight=1),
                           StepFigures("1", "step1_grounding", completed=990, skipped=12)))
    console = Console(record=True, force_terminal=True, width=80, soft_wrap=True)  # as `out`
    console.print(render(info, snap, 80))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "\u2026" not in text  # nothing cut
    flat = " ".join(text.split())
    for figure in ("4 workers, 1,300 images x 2 steps", "/data/some/rather/long/path/to/the/images",
                   "1,000/1,300 12 failed 1 in flight", "990/1,300 12 skipped",
                   "87 steps/min", "ETA 00:15:00", "1,180 requests (1 in flight, 2 waiting to "
                   "retry)", "tokens 123,456 prompt, 7,890 answer, 12 thinking, cost $0.0136",
                   "rate_limited 12, server_error 3", snap.waiting,
                   "error has occurred. Please retry."):
        assert figure in flat, figure


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_summary_shows_step_names_whole_at_any_width(width):
    summary = RunSummary("run", "image_grounding", Path("/out"), 1300, list(STEPS), requests=9)
    summary.counts["0"] = Counter(completed=1288, failed=12)
    console = Console(record=True, width=width, force_terminal=True)
    print_summary(console, summary)
    text = console.export_text()
    assert "\u2026" not in text and max(map(len, text.splitlines())) <= width
    if width >= 100:  # the table fits
        assert re.search(r"step0_expression_extraction .\s+1,288 .\s+0 .\s+12 ", text), text
    else:  # one line per step, wrapped between words
        assert "step0_expression_extraction: 1,288 completed, 0 cached, 12 failed, 0 skipped, " \
               "0 not reached, 0 of them nothing found" in " ".join(text.split())
    assert "step1_grounding" in text


def test_piped_output_is_not_cut_at_80_columns(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=43)
    spec = write_spec(tmp_path / "spec.yaml",
                      grounding_overrides(tmp_path / "out", data.root, sim.openai_base_url))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "auto_label", "generate", "-e", str(spec)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\u2502 step0_expression_extraction \u2502\s+1 \u2502", done.stdout), \
        done.stdout
    assert "\u2026" not in done.stdout


@pytest.mark.parametrize("command", [[], ["generate"], ["show"], ["replay"], ["probe"]])
def test_help_reads_well_at_80_columns(command):
    result = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output  # a flag takes no value
    assert "\u2026" not in result.output
    if command:
        assert "<path>" in result.output  # the other options keep their type
        return
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "\u2500 Commands " in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("\u2570"))
    rows = [line[1:-1] for line in lines[start + 1:end]]  # the box's rows, without borders
    column = next(row.index("Run the spec") for row in rows if "Run the spec" in row)
    for row, below in pairwise(rows):  # a line broken early leaves room for the next word
        room = len(row) - len(row.rstrip()) - 1
        assert below[:column].strip() or room < len(below[column:].split()[0]) + 1, (row, below)
    flat = " ".join(" ".join(rows).split())
    assert "parsed outputs, tokens, latency, attempts, errors" in flat
