"""Writes each skill's generated reference pages, so that they cannot drift from the code:

- `references/spec-keys.md`: every spec key of the skill's pipeline with its default and meaning,
  from the spec models (`auto_label.spec_template.spec_reference`);
- `references/errors.md`: the messages people meet most, each with what it means and the fix
  (ERRORS below; tests/test_skills.py checks that every quoted message is still in the code);
- `references/vllm-server.md`: a copy of `_shared/vllm-server.md`.

Run it after changing a spec model, ERRORS or the shared page (tests/test_skills.py fails until
the committed pages equal what it writes):

    .venv/bin/python skills/build_references.py
"""

from __future__ import annotations

from pathlib import Path

from auto_label.spec_template import spec_reference

HERE = Path(__file__).resolve().parent
SKILLS = {"auto-label-image-grounding": "image_grounding",
          "auto-label-referring-expressions": "image_referring_expression"}
BOTH = frozenset(SKILLS.values())
GROUNDING = frozenset({"image_grounding"})
REFERRING = frozenset({"image_referring_expression"})

ERRORS: list[tuple[frozenset[str], str, str, str]] = [
    # (pipelines, a fragment of the message as the code writes it, what it means, the fix)
    (BOTH, "the endpoint rejected the API key",
     "The key is missing, wrong, or for another endpoint (exit 2).",
     "Ask the user to set the key variable in the shell the commands run from (OPENAI_API_KEY "
     "or GOOGLE_API_KEY); a vLLM server started without `--api-key` takes any value, one "
     "started with it needs that value. Never put the key in the spec."),
    (BOTH, "cannot reach",
     "Nothing answers at the base URL: the server is down, or the host or port is wrong "
     "(exit 3; nothing was recorded as failed).",
     "Check the server is up: `curl <BASE_URL>/models`. Fix `vlm.openai.base_url` and run the "
     "same command again: it resumes."),
    (BOTH, "did you mean base_url",
     "The base URL lacks its `/v1` (exit 3).",
     "OpenAI-compatible servers serve `/v1/chat/completions`: set the base URL to "
     "`http://HOST:PORT/v1`."),
    (BOTH, "the endpoint does not serve the model",
     "The model name is not one the server serves; the message lists those it does (exit 3).",
     "Set `vlm.openai.model_name` to the served name (vLLM's `--served-model-name`, else the "
     "path or id it was started with)."),
    (BOTH, "unknown key, did you mean",
     "A misspelt spec key or override (exit 2).", "Use the key it suggests; "
     "references/spec-keys.md lists them all."),
    (GROUNDING, "input_jsonl not found",
     "The captions file is not where the spec says (exit 2).",
     "Relative paths are resolved against the directory the command runs from; give an "
     "absolute path."),
    (REFERRING, "have no label file in",
     "Some images have no `<stem>.txt` label file; they were skipped (the run exits 1).",
     "Add the label files, or leave it: the others ran."),
    (REFERRING, "expected at least 8 columns",
     "A label row is not KITTI (class in column 0, box in columns 4-7); it was skipped.",
     "Rewrite the label files with the box in columns 4-7 (left top right bottom, pixels)."),
    (REFERRING, "no image has a matching label file",
     "No image stem matches a label file stem (exit 2).",
     "Check `data.image_dir` and `data.kitti_label_dir`, and that the names match "
     "(`0001.jpg` with `0001.txt`)."),
    (BOTH, "no ledger here",
     "The results_dir has no run yet, or the path is wrong.",
     "Use the `results_dir` of the spec; run `generate` first."),
    (BOTH, "another auto_label run",
     "Another run is using this results_dir (exit 2); the message names its pid.",
     "Wait for it (watch it with `auto_label status`), or stop it; a killed run leaves no "
     "stale lock."),
    (BOTH, "the daily quota",
     "The provider's per-day quota is spent (exit 3).",
     "Wait for the reset (the message says when) or raise the quota, then run the same "
     "command: it resumes."),
    (BOTH, "no quota left",
     "The account has no credit (OpenAI's insufficient_quota; exit 3).",
     "The user must add credit or use another key."),
    (BOTH, "reasoning before any answer",
     "A reasoning model used the whole token limit thinking.",
     "Raise `vlm.openai.max_tokens` (or `vlm.gemini.max_output_tokens`) and rerun with "
     "`--retry-failed`."),
    (BOTH, "looked like another coordinate convention",
     "The boxes the model wrote do not fit the configured convention: they are probably "
     "wrong (the run exits 1 and `status` repeats the warning).",
     "Run `auto_label probe -e spec.yaml --write`, then the same `generate`: the steps run "
     "again with the right reading."),
    (BOTH, "boxes look like pixels of a smaller frame",
     "A Qwen2.5-VL-style server resizes images before the model sees them, and the spec does "
     "not know by how much.",
     "Run `auto_label probe -e spec.yaml --write` (it measures the server's max_pixels), then "
     "rerun."),
    (BOTH, "no reading explains the answers",
     "`probe` could not read the model's boxes in any convention (exit 1).",
     "The model does not locate objects well enough, or answers in a shape the parser does not "
     "read (`auto_label show` on the probe's images shows the raw answers): use another "
     "model."),
    (BOTH, "max_cost is set but no price is known",
     "`workflow.max_cost` needs the model's price, which the price table does not have.",
     "Set `vlm.<backend>.price` (USD per million tokens), or leave max_cost out."),
    (BOTH, "data.max_image_pixels",
     "An image has more pixels than `data.max_image_pixels` (a decompression-bomb guard).",
     "Raise it in the spec (or 0 for no limit) if the image is genuine."),
    (BOTH, "corrupt or truncated image",
     "The image file cannot be decoded; that image fails, the others go on.",
     "Replace the file or leave it out of the input."),
]

CODE_FORMS = {"input_jsonl not found": "{what} not found"}
"""a message put together by the code: how its source writes it (for the test that checks the
messages are still written)"""

HEAD = """# Common errors of {pipeline}

Generated by `skills/build_references.py`; do not edit by hand. Each message is one line on the
terminal (or in generate.log); look for the quoted part. Exit codes: 1 some images failed or
input was skipped (rerun to retry), 2 a bad spec, input, key or a busy results_dir, 3 the
endpoint stopped the run (fix it and rerun: it resumes).

| message contains | meaning | fix |
|---|---|---|
"""


def errors_page(pipeline: str) -> str:
    rows = [f"| `{fragment}` | {meaning} | {fix} |"
            for pipelines, fragment, meaning, fix in ERRORS if pipeline in pipelines]
    return HEAD.format(pipeline=pipeline) + "\n".join(rows) + "\n"


def pages() -> dict[Path, str]:
    """Every generated page: its path -> its text."""
    shared = (HERE / "_shared" / "vllm-server.md").read_text(encoding="utf-8")
    written = {}
    for skill, pipeline in SKILLS.items():
        references = HERE / skill / "references"
        written[references / "spec-keys.md"] = spec_reference(pipeline)
        written[references / "errors.md"] = errors_page(pipeline)
        written[references / "vllm-server.md"] = shared
    return written


def main() -> None:
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
