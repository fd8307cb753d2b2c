"""Routes and served models of the VLM SIMULATOR, answered as vLLM and Google answer them.

For tests and demos only.

- An unknown route on the OpenAI side (e.g. ``POST /chat/completions`` from a client whose
  base_url lacks ``/v1``) gets vLLM's 404: FastAPI/Starlette's own ``{"detail": "Not Found"}``,
  not an OpenAI error object (vllm-project/vllm#5082: ``curl http://localhost:8000/generate``
  -> ``{"detail":"Not Found"}``; meilisearch/documentation#3294: vLLM logs
  ``"POST /chat/completions HTTP/1.1" 404 Not Found`` for a base URL without ``/v1``).
- ``GET /v1/models`` lists the served models as vLLM does (vllm-project/vllm
  vllm/entrypoints/openai/models/serving.py ``show_available_models`` and
  engine/protocol.py ``ModelList`` / ``ModelCard``: object "list", cards with id, object
  "model", created, owned_by "vllm", root, parent, max_model_len, permission). vLLM always has
  the route, so the simulator always serves it: `SimConfig.served_models`, or "sim-vlm".
- With `SimConfig.served_models` set, a chat request naming another model gets vLLM's 404
  (models/serving.py ``check_model``: "The model `x` does not exist.", type "NotFoundError",
  param "model", code 404, in the ``{"error": {...}}`` envelope of engine/protocol.py
  ``ErrorResponse``), and a Gemini request Google's 404 NOT_FOUND ("models/x is not found for
  API version v1beta, or is not supported for generateContent. Call ListModels to see the list
  of available models and their supported methods.", quoted in google/adk-python#200 and
  10up/classifai#926; the API version is the request's, google-gemini-php/laravel#32 quotes
  "for API version v1").
- Google's own model routes: ``GET /{v1beta,v1alpha}/models`` (models.list) and
  ``GET /{v1,v1beta,v1alpha}/models/{model}`` (models.get, which clients call to check a model
  exists) answer with Google's Model resource (name "models/{model}", version, displayName,
  description, inputTokenLimit, outputTokenLimit, supportedGenerationMethods, temperature,
  topP, topK: https://ai.google.dev/api/models#Model, and the fields of glm.Model in
  https://ai.google.dev/api/python/google/generativeai/types/Model). ``GET /v1/models`` is
  vLLM's list above: the one path both sides share goes to the OpenAI side. An unserved model
  gets Google's 404 NOT_FOUND; its wording for models.get ("... is not supported for get")
  mirrors the generateContent one and is not sourced.
"""

from __future__ import annotations

import re
import time
from typing import Any

DEFAULT_MODEL = "sim-vlm"
MAX_MODEL_LEN = 32768  # what the simulated server reports as its context length

_GEMINI_ROUTE = re.compile(r"^/(v1|v1beta|v1alpha)/(models|tunedModels)/[^/]+:[A-Za-z]+$")


def is_gemini_path(path: str) -> bool:
    """Whether an unknown `path` belongs to Google's side (answered in Google's error shape)."""
    return path.startswith(("/v1beta/", "/v1alpha/")) or _GEMINI_ROUTE.match(path) is not None


def route_not_found() -> dict[str, Any]:
    """FastAPI/Starlette's body for a route it does not have, as vLLM sends it."""
    return {"detail": "Not Found"}


def _bare(name: str) -> str:
    return name.removeprefix("models/")


def serves(served: tuple[str, ...], protocol: str, model: str) -> bool:
    """Whether a request naming `model` is served (any name when `served` is empty).

    vLLM compares the name exactly (``is_base_model``); Google's path names the model without
    its "models/" prefix, so on the Gemini side "x" and "models/x" are the same model.
    """
    if not served:
        return True
    if protocol == "gemini":
        return _bare(model) in {_bare(name) for name in served}
    return model in served


def model_list(served: tuple[str, ...]) -> dict[str, Any]:
    """The body of ``GET /v1/models``: vLLM's ModelList of ModelCards."""
    created = int(time.time())
    return {"object": "list", "data": [{
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": name,
        "parent": None,
        "max_model_len": MAX_MODEL_LEN,
        "permission": [{
            "id": f"modelperm-sim{index:04d}", "object": "model_permission",
            "created": created, "allow_create_engine": False, "allow_sampling": True,
            "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
            "allow_fine_tuning": False, "organization": "*", "group": None,
            "is_blocking": False,
        }],
    } for index, name in enumerate(served or (DEFAULT_MODEL,))]}


def google_model(name: str) -> dict[str, Any]:
    """Google's Model resource for `name` (models.get, one entry of models.list)."""
    bare = _bare(name)
    return {
        "name": f"models/{bare}",
        "version": "001",
        "displayName": bare,
        "description": "A simulated vision-language model (synthetic scenes only).",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
    }


def google_model_list(served: tuple[str, ...]) -> dict[str, Any]:
    """The body of Google's models.list."""
    return {"models": [google_model(name) for name in served or (DEFAULT_MODEL,)]}


def unknown_model(protocol: str, model: str, api_version: str,
                  method: str = "generateContent") -> dict[str, Any]:
    """The 404 body for a model the server does not serve, in the protocol's own shape."""
    if protocol == "gemini":
        return {"error": {
            "code": 404,
            "message": (f"models/{_bare(model)} is not found for API version {api_version}, "
                        f"or is not supported for {method}. Call ListModels to see the "
                        "list of available models and their supported methods."),
            "status": "NOT_FOUND",
        }}
    return {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                      "param": "model", "code": 404}}
