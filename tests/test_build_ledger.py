"""bench/build_ledger.py writes what a run would: a real generate reuses every done image."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import sys
from pathlib import Path

from PIL import Image
from support import SIM_KEY

from auto_label import generate, load_spec
from auto_label.pipelines.grounding.config import GroundingData
from auto_label.pipelines.grounding.inputs import read_grounding_inputs
from auto_label.sim import analyse_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from build_ledger import build, image_input, image_name, kind_of, png_bytes


def test_images_are_distinct_pngs_the_simulator_sees_as_their_shape():
    datas = {png_bytes(i, kind_of(i, 0)) for i in range(200)}
    assert len(datas) == 200
    kind = kind_of(7, 0)
    data = png_bytes(7, kind)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (16, 16) and image.format == "PNG"
    seen = analyse_bytes(data).components
    assert [(c.color, c.shape) for c in seen] == [(kind.color, kind.shape)]


def test_a_rerun_on_a_built_ledger_asks_only_for_the_images_left_undone(tmp_path, sim):
    built = build(tmp_path / "results", tmp_path / "data", images=30, done=0.9, batch=7)
    assert built.done == 27 and len(built.undone) == 3
    db = tmp_path / "results" / "ledger.db"
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        kinds = dict(conn.execute("SELECT type, COUNT(*) FROM events GROUP BY type").fetchall())
    conn.close()
    kinds.pop("request_template", None)  # once per prompt template, when requests use them
    assert kinds == {"run_started": 1, "run_finished": 1, "image_seeded": 27,
                     "request_sent": 54, "response_received": 54, "step_completed": 54}
    listed = read_grounding_inputs(GroundingData(input_jsonl=built.input_jsonl,
                                                 image_root=str(built.data_dir))).items
    assert listed == [image_input(i, 0, built.data_dir) for i in range(30)]

    spec = load_spec(None, built.overrides(
        sim.openai_base_url, f"image_grounding.vlm.openai.api_key={SIM_KEY}"))
    summary = generate(spec)

    assert summary.complete
    assert summary.counts["0"]["cached"] == 27 and summary.counts["1"]["cached"] == 27
    asked = sorted((r.image_sha256, r.task) for r in sim.requests()
                   if r.task.startswith("grounding."))
    undone_shas = {hashlib.sha256((tmp_path / "data" / image_name(int(i[4:]))).read_bytes())
                   .hexdigest() for i in built.undone}
    assert {sha for sha, _ in asked} == undone_shas
    assert sorted(task for _, task in asked) == ["grounding.extract"] * 3 + ["grounding.ground"] * 3
    with sqlite3.connect(db) as conn:
        new = conn.execute("SELECT type, image_id FROM events WHERE seq > ? AND type = "
                           "'request_sent'", (before,)).fetchall()
    conn.close()
    assert sorted({image for _, image in new}) == built.undone
