"""Real endpoints and real answers, end to end through the real SDKs against the simulator playing
real servers: fail fast when the endpoint is down, wait as told, never record a wrong answer as
done, and every answer shape servers really return."""

from __future__ import annotations

import socket
import threading

import pytest
from support import SIM_KEY, asked, backend_overrides, grounding_overrides, read_jsonl
from typer.testing import CliRunner

from auto_label import generate, ledger_status, load_spec
from auto_label.cli.main import app
from auto_label.errors import EndpointUnavailable, QuotaExhausted
from auto_label.evaluate import match_ground_truth
from auto_label.ledger import Ledger
from auto_label.ledger.events import ResponseReceived
from auto_label.sim import SimConfig, Simulator, write_grounding_dataset


def spec(tmp_path, base_url, *extra, images=None):
    return load_spec(None, grounding_overrides(
        tmp_path / "out", tmp_path / "data", base_url,
        "image_grounding.vlm.openai.coordinates=xyxy_pixel", *extra))


def failed_steps(results):
    with Ledger.open(results, create=False) as ledger:
        return ledger.count("step_failed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_nothing_listening_stops_before_any_image_with_the_url(tmp_path):
    import json

    data = write_grounding_dataset(tmp_path / "data", 1, seed=1)  # 500 lines, one image
    line = json.loads(data.input_path.read_text())
    data.input_path.write_text("".join(json.dumps({**line, "image_id": f"i{n}"}) + "\n"
                                       for n in range(500)))
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointUnavailable, match=rf"cannot reach {url}"):
        generate(spec(tmp_path, url))
    result = CliRunner().invoke(app, ["generate", "-e", str(write(tmp_path, url))])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "rerun to resume" in lines[0]


def write(tmp_path, url):
    from test_resume import write_spec

    return write_spec(tmp_path / "spec.yaml", grounding_overrides(
        tmp_path / "out", tmp_path / "data", url,
        "image_grounding.vlm.openai.coordinates=xyxy_pixel"))


def test_an_endpoint_that_dies_mid_run_stops_it_and_no_image_is_failed(tmp_path):
    data = write_grounding_dataset(tmp_path / "data", 150, seed=2)
    port = free_port()
    server = Simulator(SimConfig(seed=1, api_key=SIM_KEY, latency_mean=0.02), port=port).start()

    class Dying:  # the endpoint goes away after 20 answers
        def note(self, message):
            pass

        def begin(self, info, snapshot):
            def watch():
                while not ended.wait(0.002):
                    if sum(step.completed for step in snapshot().steps) >= 20:
                        server.stop()
                        return

            threading.Thread(target=watch, daemon=True).start()

        def end(self, final):
            ended.set()

    ended = threading.Event()

    with pytest.raises(EndpointUnavailable, match="in a row failed without an answer"):
        generate(spec(tmp_path, f"http://127.0.0.1:{port}/v1"), progress=Dying())
    assert failed_steps(tmp_path / "out") == 0
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        attempts = [e for _, e in ledger.events(["attempt_failed"])]
    assert 1 <= len(attempts) <= 5 + 8  # the breaker's threshold, plus requests in flight
    with Simulator(SimConfig(seed=1, api_key=SIM_KEY), port=port):
        again = generate(spec(tmp_path, f"http://127.0.0.1:{port}/v1"))
    assert again.complete  # rerunning resumes
    assert match_ground_truth(read_jsonl(tmp_path / "out" / "annotations.jsonl"),
                              data.records).recall > 0.95


def test_requests_that_hang_in_a_row_stop_the_run(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 40, seed=3)
    sim = make_sim(faults={"hang": 1.0}, hang_seconds=3)
    with pytest.raises(EndpointUnavailable, match=r"gave no answer within 0\.3 s"):
        generate(spec(tmp_path, sim.openai_base_url, "image_grounding.vlm.openai.timeout=0.3",
                      "image_grounding.workflow.retries.endpoint_failures=3"))
    assert failed_steps(tmp_path / "out") == 0


def test_a_base_url_without_v1_says_so(tmp_path, sim):
    write_grounding_dataset(tmp_path / "data", 3, seed=4)
    base = sim.openai_base_url.removesuffix("/v1")
    with pytest.raises(EndpointUnavailable, match=rf"did you mean base_url {base}/v1\?"):
        generate(spec(tmp_path, base))
    assert [(r.outcome, r.status) for r in sim.requests()] == [("not_found", 404)]  # GET /models


def test_a_model_the_endpoint_does_not_serve_lists_the_ones_it_does(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 3, seed=5)
    sim = make_sim(served_models=("Qwen/Qwen2.5-VL-7B-Instruct", "other-vlm"))
    with pytest.raises(EndpointUnavailable,
                       match=r"does not serve the model 'sim-vlm'; it serves: "
                             r"Qwen/Qwen2.5-VL-7B-Instruct, other-vlm"):
        generate(spec(tmp_path, sim.openai_base_url))
    assert failed_steps(tmp_path / "out") == 0


def gemini_spec(tmp_path, sim, *extra):
    return load_spec(None, [
        f"results_dir={tmp_path / 'out'}", "autolabel_type=image_grounding",
        *backend_overrides("image_grounding", "gemini", sim),
        f"image_grounding.data.input_jsonl={tmp_path / 'data' / 'input.jsonl'}",
        f"image_grounding.data.image_root={tmp_path / 'data'}",
        "image_grounding.workflow.retries.backoff_base=0.01", *extra])


def test_a_per_minute_gemini_quota_waits_as_its_body_says_and_completes(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 6, seed=6)
    sim = make_sim(faults={"quota_minute": 0.3}, quota_retry_delay=0.4)
    summary = generate(gemini_spec(tmp_path, sim))
    assert summary.complete
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        events = [e for _, e in ledger.events(["request_sent", "attempt_failed"])]
    limited = [e for e in events if e.type == "attempt_failed"]
    assert limited and all(e.retry_after_s == 0.4 for e in limited)
    for failure in limited:  # no request of the pool started during the wait it was told
        during = [e for e in events if e.type == "request_sent"  # (50 ms: already released)
                  and failure.at + 0.05 < e.at < failure.at + 0.35]
        assert during == []


def test_a_per_day_quota_stops_at_once_saying_so(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 20, seed=7)
    sim = make_sim(faults={"quota_day": 1.0})
    with pytest.raises(QuotaExhausted, match=r"daily quota GenerateRequestsPerDay.* is spent"):
        generate(gemini_spec(tmp_path, sim))
    assert failed_steps(tmp_path / "out") == 0
    assert len(asked(sim)) <= 8  # the requests in flight when the first answer came


@pytest.mark.parametrize("style", ["content_parts", "python_literal", "label_variants",
                                   "gemini_native", "reasoning_only"])
def test_every_answer_shape_gives_the_right_boxes(tmp_path, make_sim, style):
    data = write_grounding_dataset(tmp_path / "data", 4, seed=8)
    sim = make_sim(answer_style=style)
    summary = generate(spec(tmp_path, sim.openai_base_url))
    assert summary.complete, summary.examples
    records = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert match_ground_truth(records, data.records, threshold=0.9).recall == 1.0
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        responses = [e for _, e in ledger.events(["response_received"])
                     if isinstance(e, ResponseReceived)]
    if style in ("content_parts", "reasoning_only"):
        assert all(r.thinking for r in responses)
    if style == "reasoning_only":
        assert {r.answer_in for r in responses} == {"reasoning"} and not any(r.text
                                                                             for r in responses)


def test_reasoning_cut_at_the_token_limit_fails_naming_the_limit(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 2, seed=9)
    sim = make_sim(answer_style="reasoning_cut")
    summary = generate(spec(tmp_path, sim.openai_base_url))
    assert summary.failures == {"truncated": 2}
    key = "image_grounding.vlm.openai.max_tokens"  # the whole key, as an override takes it
    assert all(f"{key} = 4096" in e and f"raise {key}" in e
               for e in summary.examples)
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        responses = [e for _, e in ledger.events(["response_received"])]
    assert len(responses) == 4 and all(r.usage.completion_tokens for r in responses)


def test_an_explicit_empty_answer_is_nothing_found_not_a_failure(tmp_path, make_sim):
    write_grounding_dataset(tmp_path / "data", 3, seed=10)
    sim = make_sim(answer_style="explicit_empty")
    summary = generate(spec(tmp_path, sim.openai_base_url))
    assert summary.complete and summary.nothing_found == {"1": 3}
    status = ledger_status(tmp_path / "out")
    assert status.nothing_found == {"1": 3} and status.completed["1"] == 3
    shown = CliRunner().invoke(app, ["status", str(tmp_path / "out")])
    assert "of them nothing found" in shown.output


def test_a_decomposed_caption_gets_its_spans(tmp_path, sim):
    import json
    import unicodedata

    data = write_grounding_dataset(tmp_path / "data", 1, seed=11)
    line = json.loads((data.input_path).read_text())
    line["caption"] = unicodedata.normalize("NFD", "Café scene: " + line["caption"])
    data.input_path.write_text(json.dumps(line) + "\n")
    generate(spec(tmp_path, sim.openai_base_url))
    record = read_jsonl(tmp_path / "out" / "annotations.jsonl")[0]
    assert record["caption"] == unicodedata.normalize("NFC", record["caption"])
    assert record["expressions"] and all(e["char_span"] is not None
                                         for e in record["expressions"])
    for expression in record["expressions"]:
        start, end = expression["char_span"]
        assert record["cleaned_caption"][start:end] == expression["text"]


def test_probe_against_nothing_listening_says_so_at_once(tmp_path):
    from test_resume import write_spec

    url = f"http://127.0.0.1:{free_port()}/v1"
    path = write_spec(tmp_path / "spec.yaml", grounding_overrides(tmp_path / "out",
                                                                  tmp_path / "data", url))
    result = CliRunner().invoke(app, ["probe", "-e", str(path)])
    assert result.exit_code == 3 and f"cannot reach {url}" in result.output


def test_a_step_skipped_for_a_step_never_run_says_why(tmp_path, sim):
    write_grounding_dataset(tmp_path / "data", 2, seed=12)
    summary = generate(spec(tmp_path, sim.openai_base_url, "image_grounding.workflow.steps=['1']"))
    assert summary.counts["1"]["skipped"] == 2 and asked(sim) == []
    assert summary.skip_reasons == {
        "step 1 needs step 0, which this run does not run and which never completed for the "
        "image (add it to workflow.steps)": 2}


def test_a_bom_at_the_start_of_the_input_is_not_data(tmp_path, sim):
    data = write_grounding_dataset(tmp_path / "data", 1, seed=13)
    data.input_path.write_bytes(b"\xef\xbb\xbf" + data.input_path.read_bytes())
    assert generate(spec(tmp_path, sim.openai_base_url)).complete
