"""The compact ledger: a request stores its prompt's template key and values (the template's text
and the backend parameters once per run, in `request_template`), image events leave out their
defaults. What is sent stays byte for byte what it was, `show` and the views still give every
prompt, `--check` holds, and ledgers written before (0.1.0's and those of commit e2b8715, the
last one before templates) still read, export, resume and show."""

from __future__ import annotations

import json
import shutil
import sqlite3
import types
from pathlib import Path
from typing import Any, cast

import prompts_before_templates as before
import pytest
from support import SIM_KEY, asked, backend_overrides, grounding_spec, referring_spec

from auto_label import export, generate, ledger_status, load_spec
from auto_label.boxes import Convention
from auto_label.history import image_history
from auto_label.ledger import Ledger, audit_queries
from auto_label.ledger.events import (
    EVENT_CLASSES,
    ImageSeeded,
    RequestSent,
    RequestTemplate,
    ResponseReceived,
    Row,
    StepCompleted,
    Usage,
    parse_event,
)
from auto_label.ledger.fold import fold
from auto_label.ledger.templates import TemplateBook, render
from auto_label.pipelines.contract import StepInput, StepOutput
from auto_label.pipelines.grounding import steps as grounding_steps
from auto_label.pipelines.referring import steps as referring_steps
from auto_label.pipelines.registry import get_pipeline
from auto_label.pipelines.templating import Prompt
from auto_label.sim import write_grounding_dataset, write_referring_dataset

MAIN = Path(__file__).parent / "fixtures" / "ledgers_main_e2b8715"
"""Written by tests/fixtures/make_ledger_fixtures.py at commit e2b8715 (requests with their
prompt and parameters inline); kept as they are."""
PIPELINES = ["image_grounding", "image_referring_expression"]
CONVENTIONS = ["xyxy_pixel", "xyxy_1000", "yxyx_1000"]
OLD_PROMPTS = types.SimpleNamespace(**{name: getattr(before, name) for name in (
    "extract_expressions", "ground_expressions", "describe_regions", "caption_image",
    "group_expressions", "verify_expressions")})


def _run(tmp_path: Path, sim: Any, pipeline: str, convention: str, images: int = 4) -> Path:
    out = tmp_path / f"{pipeline}-{convention}"
    if pipeline == "image_grounding":
        data = write_grounding_dataset(tmp_path / f"data-{convention}", images, seed=7)
        spec = grounding_spec(out, data.root, sim.openai_base_url,
                              f"image_grounding.vlm.openai.coordinates={convention}")
    else:
        data = write_referring_dataset(tmp_path / f"rdata-{convention}", images, seed=8)
        spec = referring_spec(out, data.root, sim,
                              f"{pipeline}.vlm.openai.coordinates={convention}")
    generate(spec)
    return out


def _asked_with(results: Path) -> list[tuple[RequestSent, StepInput, str, str]]:
    """Every request a completion was read from, with the inputs its step was built from
    (rebuilt from the ledger: the seed before it, the upstream outputs the completion names), its
    prompt as the ledger gives it back and the key of its template (its step's when it names
    none)."""
    found = []
    with Ledger.open(results, create=False) as ledger:
        pipeline = get_pipeline(cast(Any, ledger.latest("run_started")).pipeline)
        book = TemplateBook(ledger.connection())
        for image_id in audit_queries.image_ids(ledger.connection()):
            events = [e for _, e in ledger.events(image_id=image_id)]
            state = fold(events, image_id=image_id)
            requests = {e.request_id: e for e in events if isinstance(e, RequestSent)}
            by_hash = {e.output_hash: e for e in events if isinstance(e, StepCompleted)}
            for event in events:
                if not isinstance(event, StepCompleted) or event.request_id is None:
                    continue
                request = requests[event.request_id]
                sent = book.sent(request)
                seed = state.seed
                assert seed is not None
                upstream: dict[str, StepOutput] = {
                    n: pipeline.step(n).stored_output(by_hash[h])
                    for n, h in event.upstream.items()}
                ctx = StepInput(image_id=image_id, caption=seed.caption, extra=seed.extra,
                                upstream=upstream,
                                convention=cast(Convention, sent.parameters["coordinates"]),
                                sent_size=request.sent_size((seed.width, seed.height)),
                                original_size=(seed.width, seed.height))
                found.append((request, ctx, sent.prompt, sent.template))
    return found


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_the_prompts_sent_and_shown_are_those_before_templates(tmp_path, sim, monkeypatch,
                                                              pipeline, convention):
    out = _run(tmp_path, sim, pipeline, convention)
    asked_again = _asked_with(out)
    steps = {r.step for r, *_ in asked_again}
    assert steps == ({"0", "1"} if pipeline == "image_grounding" else {"0", "1", "2", "3"})
    module = grounding_steps if pipeline == "image_grounding" else referring_steps
    step_of = {s.number: s for s in get_pipeline(pipeline).steps}
    for request, ctx, shown, key in asked_again:
        built = step_of[request.step].build(ctx)
        assert isinstance(built, Prompt) and built.template.key == key
        assert request.prompt_template is None  # the step's template: the key is left out
        with monkeypatch.context() as patch:
            patch.setattr(module, "prompts", OLD_PROMPTS)
            old = step_of[request.step].build(ctx)
        assert isinstance(old, str) and not isinstance(old, Prompt)
        assert shown == str(built) == old  # the ledger gives back what was sent, as before


def test_a_request_holds_values_and_its_run_the_template_once(tmp_path, sim):
    out = _run(tmp_path, sim, "image_grounding", "xyxy_pixel")
    generate(grounding_spec(out, tmp_path / "data-xyxy_pixel", sim.openai_base_url,
                            "image_grounding.vlm.openai.coordinates=xyxy_pixel",
                            "image_grounding.vlm.openai.temperature=0.2"))  # asks all again
    conn = sqlite3.connect(out / "ledger.db")
    try:
        templates = conn.execute(
            "SELECT run_id, json_extract(body, '$.template'), json_extract(body, '$.text'), "
            "json_extract(body, '$.parameters.temperature') FROM events "
            "WHERE type = 'request_template'").fetchall()
        bodies = [json.loads(b) for (b,) in conn.execute(
            "SELECT body FROM events WHERE type = 'request_sent'")]
        view = conn.execute("SELECT run, prompt_template, template, parameters, image_sha256, "
                            "attempt, model FROM requests").fetchall()
        seeds = dict(conn.execute("SELECT image_id, sha256 FROM images").fetchall())
        sent_files = conn.execute("SELECT image_id, image_sha256 FROM requests").fetchall()
    finally:
        conn.close()
    keys = [(run, key) for run, key, _, _ in templates]
    assert len(keys) == len(set(keys)) == 4  # two runs, two templates each
    assert {key for _, key in keys} == {"grounding.extract@1", "grounding.ground@1/xyxy_pixel"}
    assert sorted(t for _, _, _, t in templates) == [0.2, 0.2, 0.7, 0.7]
    assert len(bodies) == 16
    for body in bodies:
        assert {"prompt", "parameters", "backend", "model", "image_sha256"}.isdisjoint(body)
        assert all(text[:60] not in json.dumps(body) for _, _, text, _ in templates)
    assert all(template and parameters and model == "sim-vlm" and attempt == 1
               for _, _, template, parameters, _, attempt, model in view)
    assert {run for run, *_ in view} == {1, 2}
    assert all(sha == seeds[image] for image, sha in sent_files)
    with Ledger.open(out, create=False) as ledger:
        rows = audit_queries.token_sums(ledger.connection(), "openai", "sim-vlm")
    assert rows and all(matched for _, matched, *_ in rows)  # dry-run finds the model


def test_show_and_check_name_a_request_whose_template_is_missing(tmp_path, sim):
    out = _run(tmp_path, sim, "image_grounding", "xyxy_1000", images=2)
    assert ledger_status(out, check=True).problems == []
    history = image_history(out, "scene_0000")
    requests = [e for e in history.entries if isinstance(e.event, RequestSent)]
    assert requests and all(e.sent is not None and e.sent.prompt.startswith("You are")
                            for e in requests)
    as_json = history.to_json()["events"]
    sent = [e for e in as_json if e["type"] == "request_sent"]
    assert all(e["prompt"].startswith("You are") and e["parameters"]["coordinates"] ==
               "xyxy_1000" and len(e["image_sha256"]) == 64 for e in sent)
    conn = sqlite3.connect(out / "ledger.db")
    conn.execute("DELETE FROM events WHERE type = 'request_template' "
                 "AND json_extract(body, '$.template') = 'grounding.extract@1'")
    conn.commit()
    conn.close()
    problems = ledger_status(out, check=True).problems
    assert len(problems) == 2 and all("the prompt template of step 0 was not recorded" in p
                                      for p in problems)
    broken = [e for e in image_history(out, "scene_0000").entries
              if isinstance(e.event, RequestSent) and e.event.step == "0"]
    assert broken and broken[0].sent is None and "never recorded" in str(broken[0].unreadable)


# -- ledgers written before: commit e2b8715 (and 0.1.0: tests/test_fixture_ledgers.py) --------

@pytest.fixture(params=PIPELINES)
def main_ledger(request, tmp_path):
    shutil.copytree(MAIN / request.param, tmp_path / request.param)
    return request.param, tmp_path / request.param


def test_a_ledger_of_e2b8715_exports_the_same_records_and_is_sound(main_ledger):
    pipeline, root = main_ledger
    results = root / "results"
    expected = (results / "annotations.jsonl").read_text()
    (results / "annotations.jsonl").unlink()
    export(results, output_format="both" if pipeline != "image_grounding" else "jsonl")
    assert (results / "annotations.jsonl").read_text() == expected
    assert ledger_status(results, check=True).problems == []


def test_a_ledger_of_e2b8715_shows_its_inline_prompts(main_ledger):
    _, root = main_ledger
    with Ledger.open(root / "results", create=False) as ledger:
        requests = [e for _, e in ledger.events(["request_sent"])]
        images = audit_queries.image_ids(ledger.connection())
    assert requests and all(isinstance(r, RequestSent) and r.v == RequestSent.class_version
                            and r.prompt_template == ""
                            and r.prompt and r.parameters for r in requests)
    inline = {cast(RequestSent, r).request_id: cast(RequestSent, r).prompt for r in requests}
    shown = {e.event.request_id: e.sent.prompt for image in images
             for e in image_history(root / "results", image).entries
             if isinstance(e.event, RequestSent) and e.sent is not None}
    assert shown == inline


def test_a_ledger_of_e2b8715_resumes_without_asking_and_grows_compact(main_ledger, sim):
    pipeline, root = main_ledger
    data, results = root / "data", root / "results"
    if pipeline == "image_grounding":
        inputs = [f"{pipeline}.data.input_jsonl={data / 'input.jsonl'}",
                  f"{pipeline}.data.image_root={data}", f"{pipeline}.vlm.openai.temperature=0.0"]
        backend = "openai"
    else:
        inputs = [f"{pipeline}.data.image_dir={data / 'images'}",
                  f"{pipeline}.data.kitti_label_dir={data / 'labels'}",
                  f"{pipeline}.workflow.output_format=both"]
        backend = "gemini"
    overrides = [f"results_dir={results}", f"autolabel_type={pipeline}",
                 *backend_overrides(pipeline, backend, sim), *inputs]
    assert generate(load_spec(None, overrides)).requests == 0
    assert asked(sim) == []
    generate(load_spec(None, [*overrides, f"{pipeline}.vlm.{backend}.temperature=0.45"]))
    assert asked(sim)  # asked again: new requests beside the old, inline ones
    assert ledger_status(results, check=True).problems == []
    with Ledger.open(results, create=False) as ledger:
        requests = [cast(RequestSent, e) for _, e in ledger.events(["request_sent"])]
        book = TemplateBook(ledger.connection())
        prompts = [book.sent(r).prompt for r in requests]
    assert {r.prompt_template for r in requests} == {"", None}  # inline, then the step's
    assert all(p.startswith("You are") for p in prompts)
    assert SIM_KEY not in (results / "ledger.db").read_bytes().decode("utf-8", "replace")


# -- bodies --------------------------------------------------------------------------------------

def _examples() -> list[Any]:
    seed = ImageSeeded(run_id="r", image_id="i", path="/p.png", sha256="a" * 64, width=30,
                       height=40, size=1, mtime_ns=2, caption="c", extra={"image_path": "p.png"},
                       stored_width=30, stored_height=40)
    return [
        seed, seed.model_copy(update={"stored_width": 40, "stored_height": 30, "orientation": 6}),
        seed.model_copy(update={"stored_width": None, "stored_height": None, "extra": {}}),
        RequestTemplate(run_id="r", template="t@1", text="${a|json}", backend="openai",
                        model="m", parameters={"temperature": 0.0}),
        RequestSent(run_id="r", request_id="q", image_id="i", step="0", fingerprint="f",
                    prompt_template="t@1", prompt_vars={"a": [1, "é"]}, sent_width=1,
                    sent_height=2),
        RequestSent(run_id="r", request_id="q", image_id="i", step="0", attempt=3,
                    fingerprint="f", image_sha256="b" * 64, sent_width=1, sent_height=2,
                    prompt_template="", prompt="p", backend="openai", model="m", parameters={}),
        ResponseReceived(run_id="r", request_id="q", image_id="i", step="0", attempt=1,
                         text="", latency_s=0.5, usage=Usage(prompt_tokens=0)),
        ResponseReceived(run_id="r", request_id="q", image_id="i", step="0", attempt=1,
                         text="t", latency_s=0.5, thinking="x", answer_in="reasoning"),
        StepCompleted(run_id="r", image_id="i", step="1", fingerprint="f", output={},
                      output_hash="h", output_version=2, generation=3, upstream={"0": "h"}),
        StepCompleted(run_id="r", image_id="i", step="0", fingerprint="f", output={"a": None},
                      output_hash="h", found=0, source=""),
    ]


@pytest.mark.parametrize("event", _examples(), ids=lambda e: e.type)
def test_a_compact_body_reads_back_as_the_event(event):
    body = event.body()
    row = Row(event.type, event.v, event.run_id, getattr(event, "image_id", None),
              getattr(event, "step", None), event.at)
    assert parse_event(json.loads(body), row) == event
    complete = event.model_dump(mode="json")
    assert len(body) <= len(json.dumps(complete, separators=(",", ":")))
    assert parse_event(complete) == event


def test_bodies_leave_out_defaults_and_their_row_columns():
    response = ResponseReceived(run_id="r", request_id="q", image_id="i", step="0", attempt=1,
                                text="t", latency_s=0.5)
    body = json.loads(response.body())
    assert body == {"request_id": "q", "text": "t", "latency_s": 0.5}  # the rest: the row's
    assert len(json.loads(response.model_dump_json())) > len(body)  # the model dump is whole
    assert {"thinking", "answer_in", "usage", "finish_reason"}.isdisjoint(body)
    assert {cls.__name__ for cls in EVENT_CLASSES if cls.compact_body} == {
        "ImageSeeded", "ImageRejected", "RequestTemplate", "RequestSent", "ResponseReceived",
        "AttemptFailed", "StepCompleted", "StepSelected", "StepFailed"}


def test_render_fills_each_placeholder_once_and_names_a_missing_value():
    text = "a ${x} b ${y|json} c ${z|jsonl} ${x}"
    assert render(text, {"x": "${y}", "y": ["é", 1], "z": [{"k": 1}, "s"]}) == \
        'a ${y} b ["é", 1] c {"k": 1}\n"s" ${y}'
    assert render("${n} ${m}", {"n": 3, "m": {"a": None}}) == '3 {"a": null}'
    with pytest.raises(KeyError, match="no value"):
        render("${gone}", {})
