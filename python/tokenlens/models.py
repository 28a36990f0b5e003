"""Model profiles: which encoding, context limit and price a fine-tunable model has (models.json), and
the cost of training on your own hardware."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tokenlens.errors import InvalidInputError


@dataclass(frozen=True)
class ModelProfile:
    name: str
    encoding: str
    context_limit: int | None
    price_per_mtok: float | None
    source: str = ""
    as_of: str = ""


def load_profiles(path: str | Path | None = None) -> dict[str, ModelProfile]:
    """The bundled profiles, or those of a JSON file with the same layout."""
    text = (
        Path(path).read_text(encoding="utf-8")
        if path is not None
        else resources.files("tokenlens").joinpath("models.json").read_text(encoding="utf-8")
    )
    models = json.loads(text)["models"]
    return {name: ModelProfile(name=name, **fields) for name, fields in models.items()}


def find_profile(name: str, profiles: dict[str, ModelProfile]) -> ModelProfile:
    """A profile by exact name, or by a unique prefix (`gpt-4o-mini` finds `gpt-4o-mini-2024-07-18`)."""
    if name in profiles:
        return profiles[name]
    matches = [p for n, p in profiles.items() if n.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(profiles))
    raise InvalidInputError(f"unknown or ambiguous model {name!r}; known models: {known}")


@dataclass(frozen=True)
class OwnHardware:
    """Training on your own GPUs: training throughput of one GPU in tokens per second, its price per hour."""

    tokens_per_second: float
    usd_per_gpu_hour: float

    def gpu_hours(self, charged_tokens: float) -> float:
        return charged_tokens / self.tokens_per_second / 3600

    def usd(self, charged_tokens: float) -> float:
        return self.gpu_hours(charged_tokens) * self.usd_per_gpu_hour
