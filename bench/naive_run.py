"""The naive baseline: the reference implementation's approach, written for the benchmarks.

    python bench/naive_run.py INPUT_JSONL IMAGE_ROOT OUT BASE_URL WORKERS [--merge-only]

A thread pool over the images; each image asks step 0 (expressions from the caption), then
step 1 (boxes for them), with the SDK's `chat.completions.create`, and writes one JSON
checkpoint file per image per step (OUT/step0/<id>.json, OUT/step1/<id>.json). A step whose
checkpoint exists is skipped (that is its resume). At the end every checkpoint is read and merged
into OUT/annotations.jsonl. No retries, no ledger, no fingerprints: an answer that does not parse
is written as it is, and the step counts as done.
"""

from __future__ import annotations

import base64
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
from PIL import Image

STEP0 = """You are analyzing an image and its caption to extract referring expressions.

Caption: "{caption}"

Tasks:
1. Clean the caption: remove filler such as "we can see", "there is", "there are", "you can see", \
"I can see", "in the image", "in this picture", "in this photo". Keep the rest as natural \
written English.
2. Extract the referring expressions of the cleaned caption: noun phrases that name specific \
visible objects or groups, with their modifiers (for example "the red car near the tree", not \
just "car").
3. For each expression give its exact character span [start, end) in the cleaned caption and \
its core noun.

Only include expressions for things visible in the image. Each expression is a noun phrase, not \
a sentence.

Respond ONLY with a JSON object, no markdown and no explanation:
{{"cleaned_caption": "...", "expressions": [{{"text": "...", "char_span": [start, end], \
"noun_chunk": "..."}}]}}"""

STEP1 = """You are a visual grounding model. Locate the visible instances of each referring \
expression below in the image.

Referring expressions (JSON array): {expressions}

Rules:
- A bounding box is [x1, y1, x2, y2] in pixels of this image ({width}x{height}), where (x1, y1) \
is the top-left corner and (x2, y2) the bottom-right corner.
- Return at most 10 boxes per expression, the most confident first.
- Give a confidence score between 0.0 and 1.0 for each box.
- If an expression matches nothing visible, give it empty lists.

Respond ONLY with a JSON object, no markdown and no explanation, with one key per expression, \
spelled exactly as given:
{{"<expression>": {{"bboxes": [[a, b, c, d], ...], "scores": [0.9, ...]}}}}"""


def _parse(text: str) -> Any:
    text = text.strip().removeprefix("```json").removesuffix("```").strip()
    try:
        return json.loads(text)
    except ValueError:
        return None


class Naive:
    def __init__(self, image_root: Path, out: Path, base_url: str) -> None:
        self.root = image_root
        self.out = out
        self.client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0,
                                    timeout=60)
        for step in ("step0", "step1"):
            (out / step).mkdir(parents=True, exist_ok=True)

    def ask(self, prompt: str, url: str) -> str:
        reply = self.client.chat.completions.create(
            model="sim", temperature=0.7, max_tokens=4096,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": url}}]}])
        return reply.choices[0].message.content or ""

    def image(self, item: dict[str, Any]) -> None:
        image_id = Path(item["image_path"]).stem
        first, second = (self.out / "step0" / f"{image_id}.json",
                         self.out / "step1" / f"{image_id}.json")
        if second.exists():
            return
        path = self.root / item["image_path"]
        data = path.read_bytes()
        with Image.open(path) as opened:
            width, height = opened.size
        url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        if first.exists():
            step0 = json.loads(first.read_text())
        else:
            text = self.ask(STEP0.format(caption=item["caption"]), url)
            step0 = {"image_id": image_id, "caption": item["caption"], "response": text,
                     "parsed": _parse(text)}
            first.write_text(json.dumps(step0))
        parsed = step0["parsed"] if isinstance(step0["parsed"], dict) else {}
        expressions = [e.get("text", "") for e in parsed.get("expressions", [])
                       if isinstance(e, dict)]
        text = self.ask(STEP1.format(expressions=json.dumps(expressions), width=width,
                                     height=height), url)
        second.write_text(json.dumps({"image_id": image_id, "response": text,
                                      "parsed": _parse(text)}))


def merge(out: Path) -> int:
    """Every image's checkpoints into one annotations.jsonl; the lines written."""
    lines = 0
    with (out / "annotations.jsonl").open("w", encoding="utf-8") as handle:
        for second in sorted((out / "step1").glob("*.json")):
            first = out / "step0" / second.name
            step0 = json.loads(first.read_text())
            step1 = json.loads(second.read_text())
            handle.write(json.dumps({"image_id": step0["image_id"], "caption": step0["caption"],
                                     "expressions": step0["parsed"],
                                     "groundings": step1["parsed"]}) + "\n")
            lines += 1
    return lines


def main() -> None:
    input_jsonl, image_root, out, base_url, workers = sys.argv[1:6]
    out_dir = Path(out)
    if "--merge-only" not in sys.argv:
        naive = Naive(Path(image_root), out_dir, base_url)
        with open(input_jsonl, encoding="utf-8") as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        with ThreadPoolExecutor(int(workers)) as pool:
            for _ in pool.map(naive.image, items):
                pass
    print(merge(out_dir))


if __name__ == "__main__":
    main()
