"""``--model NAME[:WEIGHT],…``: which served model (a LoRA adapter is one) each request asks for.

One name: every request asks for it. Several: each request's in proportion to the weights (1 where none is
given), in a smooth weighted round robin: every pick adds each model's weight to its credit, takes the
model with the most and takes the whole weight off it. Each model's share is then exact to within one
request per process, and the sequence is the same in every run (no random draw to seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelMix:
    # (name, weight), in the order given
    models: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> ModelMix | None:
        """``a:0.5,b:0.3,c`` (ValueError with one line); None for "" (the server's first model)."""
        if not text.strip():
            return None
        models: list[tuple[str, float]] = []
        for part in text.split(","):
            name, sep, weight = part.strip().rpartition(":") if ":" in part else ("", "", "")
            name = name.strip() if sep else part.strip()
            if not name:
                raise ValueError(f"--model takes NAME[:WEIGHT],… (e.g. base:0.5,sql-lora:0.5); got {part.strip()!r}")
            try:
                value = float(weight) if sep else 1.0
            except ValueError:
                raise ValueError(f"--model {name}: the weight must be a number, got {weight.strip()!r}") from None
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"--model {name}: the weight must be positive, got {weight.strip()}")
            if name in (n for n, _ in models):
                raise ValueError(f"--model names {name} twice")
            models.append((name, value))
        return cls(tuple(models))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.models)

    @property
    def shares(self) -> dict[str, float]:
        total = sum(w for _, w in self.models)
        return {name: w / total for name, w in self.models}


class ModelPicker:
    """The next request's model, by smooth weighted round robin over the mix."""

    def __init__(self, mix: ModelMix) -> None:
        self.mix = mix
        self.credit = dict.fromkeys(mix.names, 0.0)
        self.total = sum(w for _, w in mix.models)

    def pick(self) -> str:
        for name, weight in self.mix.models:
            self.credit[name] += weight
        # the first given wins a tie
        chosen = max(self.mix.names, key=lambda n: self.credit[n])
        self.credit[chosen] -= self.total
        return chosen
