"""Helpers shared by the simulator's tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import http.client
import io
import json
from urllib.parse import urlsplit

from PIL import Image

from auto_label.sim import Scene, make_scene


def scene_with_duplicates(seed: int = 0) -> Scene:
    """The first scene of series `seed` with 3+ objects and a kind that occurs twice or more."""
    for index in range(200):
        scene = make_scene(seed, index, size=(640, 480))
        kinds = [(o.color, o.shape) for o in scene.objects]
        if len(kinds) >= 3 and len(set(kinds)) < len(kinds):
            return scene
    raise AssertionError("no scene with duplicates")


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def openai_messages(prompt: str, image: bytes, mime: str = "image/png") -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": data_url(image, mime)}},
    ]}]


def kinds(objects: list) -> dict[tuple[str, str], list[list[int]]]:
    out: dict[tuple[str, str], list[list[int]]] = {}
    for obj in objects:
        out.setdefault((obj.color, obj.shape), []).append(list(obj.bbox))
    return out


def post(base_url: str, path: str, body: object, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """POST JSON with http.client (no SDK): status, lower-cased headers, body."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", parts.path.rstrip("/") + path, raw,
                     {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(base_url: str, path: str) -> dict:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def chat_body(prompt: str, image: bytes | None, mime: str = "image/png") -> dict:
    content: list[dict] = [{"type": "text", "text": prompt}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": data_url(image, mime)}})
    return {"model": "sim", "messages": [{"role": "user", "content": content}]}
