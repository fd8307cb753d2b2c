"""Configuration blocks of the backends (`vlm.gemini`, `vlm.openai`), with the spec's defaults.

Pure pydantic: importing this does not import any SDK.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

from auto_label.backends.coords import Convention

MediaResolution = Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_serializer("api_key", check_fields=False)
    def _hide_key(self, value: SecretStr) -> str:
        return "**********" if value.get_secret_value() else ""


class GeminiConfig(_Block):
    api_key: SecretStr = Field(default=SecretStr(""), description="empty: GOOGLE_API_KEY")
    model: str = "gemini-3.1-flash-lite-preview"
    media_resolution: MediaResolution = "MEDIA_RESOLUTION_LOW"
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    max_output_tokens: int = Field(default=8192, gt=0)
    timeout: float = Field(default=120, gt=0)
    base_url: str = ""
    coordinates: Convention = "yxyx_1000"
    max_image_side: int = Field(default=0, ge=0)


class OpenAIConfig(_Block):
    api_key: SecretStr = Field(default=SecretStr(""), description="empty: OPENAI_API_KEY")
    base_url: str = ""
    model_name: str = ""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, gt=0)
    timeout: float = Field(default=60, gt=0)
    coordinates: Convention = "xyxy_pixel"
    max_image_side: int = Field(default=0, ge=0)


class VLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["gemini", "openai"] = "gemini"
    gemini: GeminiConfig = GeminiConfig()
    openai: OpenAIConfig = OpenAIConfig()
