"""The HTTP face of the VLM SIMULATOR: a real server on 127.0.0.1 for tests and demos.

It is a SIMULATOR, not a backend for real data: it answers from the pixels of synthetic shape
scenes. Any other route gets 404: vLLM's ``{"detail": "Not Found"}`` on the OpenAI side, a
Google error on Google's (catalog.py has the sources). Routes:

- ``POST /v1/chat/completions``: OpenAI chat completions,
- ``GET /v1/models``: the served models, as vLLM lists them (catalog.py),
- ``POST /{v1,v1beta,v1alpha}/models/{model}:generateContent``: Gemini (google-genai SDK),
- ``GET /{v1beta,v1alpha}/models`` and ``GET /{v1,v1beta,v1alpha}/models/{model}``: Google's
  models.list and models.get (catalog.py),
- ``GET /_sim/stats``: counters and request records as JSON (for clients in subprocesses),
- ``POST /_sim/script`` ``{"outcomes": [...], "task": null}`` and ``POST /_sim/reset``,
- both providers' batch APIs and their files (batch_routes.py, batch_openai.py,
  batch_gemini.py), ``GET /_sim/batches`` and ``POST /_sim/script_batches``.

Usage::

    with Simulator(SimConfig(latency_mean=0.05, faults={"rate_limit": 0.1})) as sim:
        client = OpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0)
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import batch_routes, catalog
from .batch_store import BatchJobInfo, BatchStore
from .engine import Engine, Reply, RequestRecord, error_reply
from .faults import SimConfig
from .protocols import RequestError, parse_gemini, parse_openai

_GEMINI_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):generateContent$")
_OPENAI_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
_GOOGLE_MODELS = re.compile(r"^/(?P<version>v1|v1beta|v1alpha)/models(?:/(?P<model>[^/:]+))?$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when 32 clients connect at once.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (killed, timed out) is normal here: say nothing."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], engine: Engine, batches: BatchStore) -> None:
        self.engine = engine
        self.batches = batches
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "auto-label-sim/1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms on every request.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections[self.request] = threading.current_thread()

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.pop(self.request, None)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _json(self, status: int, value: Any) -> None:
        self._send(Reply(status, json.dumps(value).encode()))

    # --- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        batch = batch_routes.route(self.server.batches, "GET", self.path, self.headers, b"")
        if batch is not None:
            self._send(batch)
        elif path == "/_sim/stats":
            self._json(200, self.server.engine.stats())
        elif path == _MODELS_PATH:
            self._models()
        elif (google := _GOOGLE_MODELS.match(path)) is not None:
            self._google_models(google.group("version"), google.group("model"))
        else:
            self._not_found(path)

    def _models(self) -> None:
        """vLLM's GET /v1/models."""
        engine = self.server.engine
        key = engine.config.api_key
        sent = self.headers.get("Authorization")
        key_ok = key is None or sent == f"Bearer {key}"
        engine.record(protocol="openai", model="", task="models", image_sha256=None,
                      image_size=None, outcome="ok" if key_ok else "unauthorized",
                      status=200 if key_ok else 401, key_ok=key_ok, key_sent=sent is not None)
        if not key_ok:
            self._send(error_reply("openai", 401, "Invalid API key."))
            return
        self._json(200, catalog.model_list(engine.config.served_models))

    def _google_models(self, version: str, model: str | None) -> None:
        """Google's models.list and models.get."""
        engine = self.server.engine
        config = engine.config
        sent = (self.headers.get("x-goog-api-key")
                or parse_qs(urlsplit(self.path).query).get("key", [None])[0])
        key_ok = config.api_key is None or sent == config.api_key
        served = model is None or catalog.serves(config.served_models, "gemini", model)
        status = 401 if not key_ok else 200 if served else 404
        engine.record(protocol="gemini", model=model or "", task="models", image_sha256=None,
                      image_size=None, status=status, key_ok=key_ok, key_sent=sent is not None,
                      outcome={200: "ok", 401: "unauthorized", 404: "unknown_model"}[status])
        if status == 401:
            self._send(error_reply("gemini", 401, "API key not valid."))
        elif model is None:
            self._json(200, catalog.google_model_list(config.served_models))
        elif served:
            self._json(200, catalog.google_model(model))
        else:
            self._json(404, catalog.unknown_model("gemini", model, version, "get"))

    def do_POST(self) -> None:
        engine = self.server.engine
        parts = urlsplit(self.path)
        try:
            raw = self._body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        batch = batch_routes.route(self.server.batches, "POST", self.path, self.headers, raw)
        if batch is not None:
            self._send(batch)
            return
        gemini = _GEMINI_PATH.match(parts.path)
        if parts.path == _OPENAI_PATH:
            protocol = "openai"
            sent = self.headers.get("Authorization")
            key_ok = engine.config.api_key is None or sent == f"Bearer {engine.config.api_key}"
        elif gemini is not None:
            protocol = "gemini"
            sent = self.headers.get("x-goog-api-key") or parse_qs(parts.query).get("key", [None])[0]
            key_ok = engine.config.api_key is None or sent == engine.config.api_key
        elif parts.path.startswith("/_sim/"):
            self._control(parts.path, raw)
            return
        else:
            self._not_found(parts.path)
            return
        try:
            body = json.loads(raw or b"null")
            request = (parse_openai(body) if gemini is None
                       else parse_gemini(gemini.group("model"), body, gemini.group(1)))
        except (json.JSONDecodeError, UnicodeDecodeError, RequestError) as exc:
            status, outcome = (400, "bad_request") if key_ok else (401, "unauthorized")
            engine.record(protocol=protocol, model="", task="unknown", image_sha256=None,
                          image_size=None, outcome=outcome, status=status,
                          key_ok=key_ok, key_sent=sent is not None)
            message = f"Invalid request: {exc}" if key_ok else "API key not valid."
            self._send(error_reply(protocol, status, message))
            return
        try:
            reply = engine.handle(request, key_ok, sent is not None)
        except Exception as exc:  # a simulator bug: say so loudly instead of hanging the client
            traceback.print_exc()
            engine.record(protocol=protocol, model=request.model, task="unknown",
                          image_sha256=None, image_size=None, outcome="sim_error", status=500)
            reply = error_reply(protocol, 500, f"simulator bug: {exc!r}")
        self._send(reply)

    def do_DELETE(self) -> None:
        try:
            raw = self._body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        batch = batch_routes.route(self.server.batches, "DELETE", self.path, self.headers, raw)
        if batch is not None:
            self._send(batch)
        else:
            self._not_found(urlsplit(self.path).path)

    def _control(self, path: str, raw: bytes) -> None:
        engine = self.server.engine
        try:
            body = json.loads(raw or b"{}")
            if path == "/_sim/script":
                engine.script.push(body.get("outcomes", []), body.get("task"))
            elif path == "/_sim/reset":
                engine.reset()
            else:
                self._not_found(path)
                return
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            self._json(400, {"error": {"message": str(exc)}})
            return
        self._json(200, {"ok": True})

    def _not_found(self, path: str) -> None:
        gemini = catalog.is_gemini_path(path)
        self.server.engine.record(protocol="gemini" if gemini else "openai", model="",
                                  task="unknown", image_sha256=None, image_size=None,
                                  outcome="not_found", status=404)
        if gemini:
            self._send(error_reply("gemini", 404, f"No route for {path} on the simulator."))
        else:
            self._json(404, catalog.route_not_found())


class Simulator:
    """A simulated VLM serving OpenAI and Gemini protocols on 127.0.0.1 (tests and demos only)."""

    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if host not in _LOOPBACK:
            raise ValueError("the simulator only listens on the loopback interface")
        self.config = config or SimConfig()
        self._address = (host, port)
        self._stopping = threading.Event()
        self._engine = Engine(self.config, self._stopping)
        self._batches = BatchStore(self.config, self._stopping)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self._address, self._engine, self._batches)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, name="auto-label-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving; hung and sleeping requests are cut off; returns within `timeout`-ish."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with server.conn_lock:
            live = list(server.connections.items())
        for conn, _ in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        deadline = time.monotonic() + timeout
        for thread in [self._thread, *(t for _, t in live)]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = self._address[0]
        return f"http://{'[::1]' if host == '::1' else host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def gemini_base_url(self) -> str:
        return self.base_url

    # --- observation and control -------------------------------------------------------------

    def counts(self) -> dict[tuple[str, str], int]:
        """{(image_sha256, task): number of requests received}."""
        return self._engine.counts()

    def requests(self) -> list[RequestRecord]:
        """One record per request received, in order."""
        return self._engine.records()

    def reset_counts(self) -> None:
        """Forget counts, records and the rpm window (faults then replay as on a fresh server)."""
        self._engine.reset()

    def script(self, outcomes: Iterable[str], task: str | None = None) -> None:
        """Force the outcomes ("ok" or a fault kind) of the next requests of `task` (None: any)."""
        self._engine.script.push(outcomes, task)

    def stats(self) -> dict[str, Any]:
        """What GET /_sim/stats returns."""
        return self._engine.stats()

    # --- batch jobs (batch_store.py; kept for the life of the Simulator) ------------------------

    def batch_jobs(self, provider: str | None = None) -> list[BatchJobInfo]:
        """Every batch job created (of `provider`: "openai" or "gemini"), oldest first."""
        return self._batches.infos(provider)

    def batch_job_counts(self) -> dict[str, int]:
        """{"openai": jobs created, "gemini": jobs created}."""
        return self._batches.job_counts()

    def batch_counts(self) -> dict[tuple[str, str], int]:
        """{(image_sha256, task): requests answered inside batch jobs}, like `counts()`."""
        return self._batches.counts()

    def batch_requests(self) -> list[RequestRecord]:
        """One record per request answered inside a batch job, in order."""
        return self._batches.records()

    def script_batches(self, jobs: Iterable[str] = (), lines: Iterable[str] = (),
                       provider: str | None = None) -> None:
        """How the next jobs (of `provider`; None: any) end: "completed", "expired", "failed";
        and how the next requests answered inside jobs end: "ok" or "error"."""
        self._batches.script_jobs(jobs, provider)
        self._batches.script_lines(lines)

