"""The openai backend's clients: one per thread (its own connection pool, the SDK's pool being
walked on every request), all closed with the backend."""

from __future__ import annotations

import threading

from support import SIM_KEY

from auto_label.backends.base import ModelFrame, VLMRequest
from auto_label.backends.openai_backend import OpenAIBackend, OpenAIConfig
from auto_label.pipelines.images.decode import IngestSettings
from auto_label.pipelines.images.prepare import prepare
from auto_label.sim import write_grounding_dataset


def test_each_thread_asks_through_its_own_client_and_close_closes_them_all(sim, tmp_path):
    data = write_grounding_dataset(tmp_path, 1, seed=3)
    image = prepare((data.root / data.records[0]["image_path"]).read_bytes(), name="scene",
                    sha256="x", settings=IngestSettings(),
                    frame=ModelFrame("xyxy_pixel")).prepared
    request = VLMRequest(prompt="Describe the image.", image=image)
    backend = OpenAIBackend(OpenAIConfig(base_url=sim.openai_base_url, api_key=SIM_KEY,
                                         model_name="sim-vlm", timeout=5))
    texts: list[str] = []
    seen: list[object] = []

    def worker() -> None:
        for _ in range(2):
            texts.append(backend.complete(request).text)
            seen.append(backend._thread_client())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clients = list(backend._clients)
    assert len(texts) == 8 and all(texts)
    assert len(clients) == 4 and len({id(c) for c in seen}) == 4  # one per thread, reused
    assert all(c is not backend._client and c.base_url == backend._client.base_url
               and c.timeout == backend._client.timeout and c.max_retries == 0 for c in clients)
    backend.close()
    assert all(c.is_closed() for c in clients) and backend._client.is_closed()
