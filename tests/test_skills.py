"""The agent skills (skills/*/SKILL.md) cannot rot: their front matter follows the Agent Skills
format, their generated references equal what the code generates, the error messages they quote
are still written by the code, and every shell command in them runs, in order, against the
simulator and exits as the skill says (0).

How the commands are run: every ```bash block of a SKILL.md is one step; `<!-- test: openai -->`
or `<!-- test: gemini -->` before a block runs it only for that endpoint; the rest run for both.
The placeholders are filled with a generated dataset and the simulator's URL; for Gemini the test
adds `--base-url` (the simulator's) to `auto_label init`, since the skill leaves Google's default.
The steps run in one bash process (so `export` and `cd` hold), each command's exit code checked;
a command sent to the background (`&`) is waited for at the end of its block. The `vllm serve`
commands of references/vllm-server.md need a GPU: the test starts the simulator the way each
command configures vLLM (its served model name, its max_pixels) and checks that `probe --write`
finds what the page says.

Format source: https://agentskills.io/specification (github.com/agentskills/agentskills,
docs/specification.mdx): `name` 1-64 characters, lowercase letters, digits and hyphens, not
starting or ending with a hyphen, no "--", equal to the folder's name; `description` 1-1024
characters; `compatibility` at most 500; optional `license`, `metadata`, `allowed-tools`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import SIM_KEY, read_jsonl

from auto_label.sim import write_grounding_dataset, write_referring_dataset

ROOT = Path(__file__).resolve().parent.parent
SKILLS = ROOT / "skills"
sys.path.insert(0, str(SKILLS))
import build_references  # noqa: E402

SKILL_FILES = sorted(SKILLS.glob("*/SKILL.md"))
FIELDS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
BLOCK = re.compile(r"(?:<!-- test: (?P<only>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```",
                   re.DOTALL)
IMAGES, PILOT = 10, 8
SERVED = "qwen2.5-vl-7b"


def front_matter(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path}: no front matter"
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def test_there_is_a_skill_per_pipeline():
    assert {p.parent.name for p in SKILL_FILES} == set(build_references.SKILLS)


@pytest.mark.parametrize("path", SKILL_FILES, ids=lambda p: p.parent.name)
def test_front_matter_follows_the_agent_skills_format(path):
    meta, body = front_matter(path)
    assert set(meta) <= FIELDS, set(meta) - FIELDS
    name, description = meta["name"], meta["description"]
    assert isinstance(name, str) and 1 <= len(name) <= 64 and NAME.match(name)
    assert name == path.parent.name
    assert isinstance(description, str) and 1 <= len(description) <= 1024
    assert "Use when" in description  # says when to use it, not only what it does
    assert len(meta.get("compatibility", "")) <= 500
    for link in re.findall(r"\]\((references/[^)]+)\)", body):  # every linked page exists
        assert (path.parent / link).is_file(), link
    assert "api_key:" not in body and "sk-" not in body  # keys only through the environment


def test_the_generated_references_equal_what_the_code_generates():
    for path, text in build_references.pages().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run .venv/bin/python skills/build_references.py")


def test_every_quoted_error_message_is_still_written_by_the_code():
    source = "\n".join(p.read_text(encoding="utf-8")
                       for folder in ("auto_label", "backends", "pipelines", "ledger", "cli")
                       for p in (ROOT / folder).rglob("*.py") if "sim" not in p.parts)
    for _, fragment, _, _ in build_references.ERRORS:
        written = build_references.CODE_FORMS.get(fragment, fragment)
        assert written in source, f"no code writes {fragment!r} any more"


def steps(path: Path, variant: str) -> list[list[str]]:
    """The commands of each bash block of `path` that runs for `variant`, in order."""
    blocks = []
    for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
        if match["lang"] != "bash":
            continue
        only = match["only"]
        if only is not None and only != variant:
            continue
        lines = [line.strip() for line in match["body"].replace("\\\n", " ").splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def script(blocks: list[list[str]], values: dict[str, str], variant: str, url: str) -> str:
    lines = []
    for block in blocks:
        for command in block:
            for key, value in values.items():
                command = command.replace(f"<{key}>", value)
            assert not re.search(r"<[A-Z_]+>", command), f"unfilled: {command}"
            if variant == "gemini" and command.startswith("auto_label init"):
                command += f" --base-url {shlex.quote(url)}"
            lines.append(f"{command}\necho \"@@exit $? {json.dumps(command)[1:-1]}\"")
        if any(command.endswith("&") for command in block):
            lines.append("wait")
    return "\n".join(lines) + "\n"


def run_skill(path: Path, variant: str, tmp: Path, sim: Any) -> tuple[list[tuple[int, str]], str]:
    pipeline = build_references.SKILLS[path.parent.name]
    if pipeline == "image_grounding":
        data = write_grounding_dataset(tmp / "data", IMAGES, seed=91, image_format="jpg")
        first = read_jsonl(data.root / "input.jsonl")[0]["image_path"]
        inputs = {"INPUT_JSONL": "data/input.jsonl", "IMAGE_ROOT": "data"}
    else:
        data = write_referring_dataset(tmp / "data", IMAGES, seed=92)
        first = sorted((data.root / "images").iterdir())[0].name
        inputs = {"IMAGE_DIR": "data/images", "LABEL_DIR": "data/labels"}
    url = sim.gemini_base_url if variant == "gemini" else sim.openai_base_url
    values = {**inputs, "RESULTS_DIR": "results", "BASE_URL": url,
              "TRUTH": "data/ground_truth.jsonl",
              "MODEL": "gemini-2.5-flash" if variant == "gemini" else SERVED,
              "IMAGE_ID": Path(first).stem}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OPENAI_API_KEY": SIM_KEY, "GOOGLE_API_KEY": SIM_KEY, "COLUMNS": "120"}
    env.pop("GEMINI_API_KEY", None)
    text = script(steps(path, variant), values, variant, url)
    done = subprocess.run(["bash", "-c", text], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)
    exits = [(int(m[1]), m[2]) for m in re.finditer(r"^@@exit (\d+) (.*)$", done.stdout, re.M)]
    return exits, done.stdout + done.stderr


RUNS = [(path, "openai") for path in SKILL_FILES]
"""each skill whole through an OpenAI-compatible server (about 12 s of the suite each); the
Gemini path differs only in its init command: `test_the_gemini_init_of_each_skill...`"""


@pytest.mark.parametrize(("path", "variant"), RUNS,
                         ids=[f"{p.parent.name}-{v}" for p, v in RUNS])
def test_every_command_of_the_skill_runs_and_exits_as_it_says(path, variant, tmp_path, make_sim):
    sim = make_sim(model_frame="qwen2.5_smart_resize", max_pixels=1003520,
                   served_models=(SERVED,)) if variant == "openai" else make_sim()
    exits, output = run_skill(path, variant, tmp_path, sim)
    commands = [c for block in steps(path, variant) for c in block]
    assert len(exits) == len(commands), output
    failed = [(code, command) for code, command in exits if code != 0]
    assert failed == [], output
    results = tmp_path / "results"
    records = read_jsonl(results / "annotations.jsonl")
    assert len(records) == IMAGES  # the pilot's 8, then the rest
    assert (results / "review" / "index.html").is_file()
    for name in ("coco.json", "odvg.jsonl", "sft.jsonl"):
        assert (results / name).is_file(), name
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    block = spec[build_references.SKILLS[path.parent.name]]["vlm"][variant]
    if variant == "openai":  # probe --write measured the server's frame
        assert block["coordinates"] == "xyxy_pixel"
        assert block["smart_resize"]["max_pixels"] == 1003520
    else:
        assert block["coordinates"] == "yxyx_1000"
    written = [(tmp_path / "spec.yaml").read_text(), (tmp_path / "generate.log").read_text()]
    assert not any(SIM_KEY in text for text in written)  # the key stayed in the environment
    asked = [r for r in sim.requests() if r.task != "models"]
    pipeline_requests = len(asked) - 5  # probe's five
    steps_per_image = 2 if "grounding" in path.parent.name else 4
    assert pipeline_requests == IMAGES * steps_per_image  # nothing asked twice


@pytest.mark.parametrize("path", SKILL_FILES, ids=lambda p: p.parent.name)
def test_the_gemini_init_of_each_skill_writes_a_spec_that_probes_and_plans(path, tmp_path,
                                                                          make_sim):
    """The Gemini block, then the commands that read the spec first (probe --write, the dry
    run), against the simulator's Gemini protocol."""
    sim = make_sim()
    pipeline = build_references.SKILLS[path.parent.name]
    gemini = [b for b in steps(path, "gemini") if b and b[0].startswith("auto_label init")]
    probe = [["auto_label probe -e spec.yaml --write",
              "auto_label generate -e spec.yaml --dry-run"]]
    if pipeline == "image_grounding":
        write_grounding_dataset(tmp_path / "data", 2, seed=94)
        inputs = {"INPUT_JSONL": "data/input.jsonl", "IMAGE_ROOT": "data"}
    else:
        write_referring_dataset(tmp_path / "data", 2, seed=95)
        inputs = {"IMAGE_DIR": "data/images", "LABEL_DIR": "data/labels"}
    values = {**inputs, "RESULTS_DIR": "results", "MODEL": "gemini-2.5-flash"}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GOOGLE_API_KEY": SIM_KEY}
    text = script([*gemini, *probe], values, "gemini", sim.gemini_base_url)
    done = subprocess.run(["bash", "-c", text], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    exits = [int(m[1]) for m in re.finditer(r"^@@exit (\d+) ", done.stdout, re.M)]
    assert len(gemini) == 1 and exits == [0, 0, 0], done.stdout + done.stderr
    block = yaml.safe_load((tmp_path / "spec.yaml").read_text())[pipeline]["vlm"]["gemini"]
    assert block["coordinates"] == "yxyx_1000"  # probe --write measured Gemini's convention


def serve_commands() -> list[tuple[str, str]]:
    page = SKILLS / "_shared" / "vllm-server.md"
    found = []
    for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
        if match["only"] and match["only"].startswith("vllm"):
            found.append((match["only"], match["body"].strip()))
    return found


@pytest.mark.parametrize(("marker", "command"), serve_commands())
def test_the_vllm_settings_of_the_reference_page_are_what_probe_finds(marker, command, tmp_path,
                                                                      make_sim):
    argv = shlex.split(command)
    assert argv[:2] == ["vllm", "serve"]
    served = argv[argv.index("--served-model-name") + 1]
    kwargs = json.loads(argv[argv.index("--mm-processor-kwargs") + 1]) \
        if "--mm-processor-kwargs" in argv else {}
    if marker.endswith("qwen2.5"):
        sim = make_sim(model_frame="qwen2.5_smart_resize", served_models=(served,),
                       max_pixels=kwargs.get("max_pixels", 12845056))
    else:
        sim = make_sim(convention_openai="xyxy_1000", served_models=(served,))
    data = write_grounding_dataset(tmp_path / "data", 1, seed=93)
    spec = tmp_path / "spec.yaml"
    env = {**os.environ, "OPENAI_API_KEY": SIM_KEY}
    cli = [str(Path(sys.executable).parent / "auto_label")]
    made = subprocess.run([*cli, "init", "image_grounding", "--backend", "openai", "--model",
                           served, "--base-url", sim.openai_base_url, "--results-dir",
                           str(tmp_path / "out"), "--data",
                           f"input_jsonl={data.root / 'input.jsonl'}", "--out", str(spec)],
                          env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    probed = subprocess.run([*cli, "probe", "-e", str(spec), "--write"], env=env,
                            capture_output=True, text=True)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    block = yaml.safe_load(spec.read_text())["image_grounding"]["vlm"]["openai"]
    if marker.endswith("qwen2.5"):
        assert block["coordinates"] == "xyxy_pixel"
        assert block["smart_resize"]["max_pixels"] == kwargs["max_pixels"]
    else:
        assert block["coordinates"] == "xyxy_1000"
