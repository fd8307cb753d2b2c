"""A SIMULATED vision-language model for tests and demos of auto-label, not a backend for real data.

No machine that runs the project's tests reaches a real VLM, so this package plays one: a real
HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions and Gemini generateContent
protocols, decodes the image it is sent and answers every pipeline task from the pixels of
synthetic scenes (coloured shapes on a plain background) that it also generates, with exact
ground truth. Latency, faults and rate limits are configurable and reproducible from a seed.
Like real servers it applies the EXIF orientation of the image it is sent, and it can play
Qwen2.5-VL's pixel frame (the image as its processor resized it) or Qwen3-VL's 0-1000 boxes
(frames.py, boxes.py: each behaviour with its public source). It also answers as real endpoints
do (catalog.py, quotas.py, styles.py, with the sources): vLLM's 404s for unknown routes and
unserved models and its model list, Gemini's and OpenAI's quota 429s, and the answer shapes of
real servers and models (content parts, reasoning fields, Python literals, Gemini's native
detections...), chosen by `SimConfig.served_models`, the faults "quota_minute" and "quota_day"
and `SimConfig.answer_style`. It runs both providers' batch APIs too (batch_store.py,
batch_openai.py, batch_gemini.py): OpenAI's Files + Batch API and Gemini's Files API + Batch Mode,
each request of a job answered as online, with `SimConfig.batch_delay`, `batch_expire` and
`batch_errors`, and counters (`Simulator.batch_jobs()`, `batch_job_counts()`, `batch_counts()`).

It shares no code with the client side (backends, pipelines, ledger, cli) on purpose: a bug shared
by both sides would hide itself from every test.

    from auto_label.sim import Simulator, SimConfig, write_grounding_dataset
    with Simulator(SimConfig(faults={"rate_limit": 0.1})) as sim:
        sim.openai_base_url  # "http://127.0.0.1:PORT/v1"
        sim.gemini_base_url  # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

from .batch_store import BATCH_OUTCOMES, LINE_OUTCOMES, BatchJobInfo
from .boxes import CONVENTIONS, decode_box, encode_box
from .datasets import (
    GroundingDataset,
    ReferringDataset,
    append_grounding_images,
    append_referring_images,
    write_grounding_dataset,
    write_referring_dataset,
)
from .engine import RequestRecord
from .faults import ANSWER_STYLES, FAULT_KINDS, OUTCOMES, SimConfig
from .frames import EXIF_MODES, MODEL_FRAMES, View, smart_resize
from .scenes import Scene, SceneObject, encode_image, make_scene
from .server import Simulator
from .tasks import TASKS, detect_task
from .vision import Analysis, Component, analyse, analyse_bytes

__all__ = [
    "ANSWER_STYLES",
    "BATCH_OUTCOMES",
    "CONVENTIONS",
    "EXIF_MODES",
    "FAULT_KINDS",
    "LINE_OUTCOMES",
    "MODEL_FRAMES",
    "OUTCOMES",
    "TASKS",
    "Analysis",
    "BatchJobInfo",
    "Component",
    "GroundingDataset",
    "ReferringDataset",
    "RequestRecord",
    "Scene",
    "SceneObject",
    "SimConfig",
    "Simulator",
    "View",
    "analyse",
    "analyse_bytes",
    "append_grounding_images",
    "append_referring_images",
    "decode_box",
    "detect_task",
    "encode_box",
    "encode_image",
    "make_scene",
    "smart_resize",
    "write_grounding_dataset",
    "write_referring_dataset",
]
