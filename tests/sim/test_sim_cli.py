"""`python -m auto_label.sim serve|scenes` in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from simtest_helpers import chat_body, get_json, post

pytestmark = pytest.mark.slow


def test_serve_prints_urls_and_serves_until_stopped():
    proc = subprocess.Popen(
        [sys.executable, "-m", "auto_label.sim", "serve", "--fault", "server_error=1.0",
         "--api-key", "k", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        urls = dict(line.strip().split("=", 1) for line in lines if "=" in line)
        openai_url, gemini_url = urls["OPENAI_BASE_URL"], urls["GEMINI_BASE_URL"]
        assert openai_url.startswith("http://127.0.0.1:") and openai_url.endswith("/v1")
        assert openai_url == gemini_url + "/v1"
        status, _, _ = post(openai_url, "/chat/completions", chat_body("hi", None),
                            {"Authorization": "Bearer k"})
        assert status == 500
        status, _, _ = post(openai_url, "/chat/completions", chat_body("hi", None))
        assert status == 401
        stats = get_json(gemini_url, "/_sim/stats")
        assert stats["outcomes"] == {"server_error": 1, "unauthorized": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_scenes_command_writes_a_dataset(tmp_path: Path):
    out = tmp_path / "refer"
    done = subprocess.run(
        [sys.executable, "-m", "auto_label.sim", "scenes", str(out), "-n", "3", "--kind",
         "referring", "--format", "jpg"],
        capture_output=True, text=True, timeout=60, check=True)
    assert "3 referring scenes" in done.stdout
    assert len(list((out / "labels").glob("*.txt"))) == 3
    assert len(list((out / "images").glob("*.jpg"))) == 3
    truth = [json.loads(x) for x in (out / "ground_truth.jsonl").read_text().splitlines()]
    assert [t["image_id"] for t in truth] == ["scene_0000", "scene_0001", "scene_0002"]


def test_scenes_never_replaces_a_dataset_without_force(tmp_path: Path):
    (tmp_path / "input.jsonl").write_text('{"image_path": "mine.jpg", "caption": "mine"}\n')
    command = [sys.executable, "-m", "auto_label.sim", "scenes", str(tmp_path), "-n", "1"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert "mine.jpg" in (tmp_path / "input.jsonl").read_text()
    subprocess.run([*command, "--force"], capture_output=True, timeout=60, check=True)
    assert "mine.jpg" not in (tmp_path / "input.jsonl").read_text()
