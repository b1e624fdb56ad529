"""Which models a caller may name, and what tokens cost (issue 17).

Policy: LLM_ALLOWED_MODELS (empty: any), narrowed by a key's own `allowed_models`. A request or
batch line that names another model is refused with 400 `model_not_allowed`; one that names none
gets the backend's configured model, the operator's own choice.

Prices: LLM_PRICES gives per model the price per 1000 prompt, completion and cached-prompt tokens;
LLM_PRICE_PER_1K_TOKENS (one price for every token of a model) still prices the models it names.
Prompt tokens the provider served from its prompt cache are billed at the cached-prompt price
(free when none is given), the rest at the prompt price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.callers.model import Limits
from service.config import Settings
from service.errors import AppError


class ModelNotAllowed(AppError):
    status_code = 400
    code = "model_not_allowed"


def allowed_models(settings: Settings, limits: Limits | None) -> frozenset[str] | None:
    """The models a caller may name; None: any."""
    allowed = frozenset(settings.llm_allowed_models) if settings.llm_allowed_models else None
    own = limits.allowed_models if limits is not None else None
    if own is not None:
        allowed = frozenset(own) if allowed is None else allowed & frozenset(own)
    return allowed


def check_model(payload: Any, settings: Settings, limits: Limits | None) -> None:
    model = getattr(payload, "model", None)
    if model is None:
        return
    allowed = allowed_models(settings, limits)
    if allowed is not None and model not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise ModelNotAllowed(
            f"The model '{model}' is not allowed for this key (allowed: {listed}).",
            details=[{"loc": "model", "msg": f"one of: {listed}, or omit it for the default model"}],
        )


@dataclass(frozen=True, slots=True)
class Price:
    prompt: float
    completion: float
    cached_prompt: float


def price_of(settings: Settings, model: str | None) -> Price | None:
    if model is None:
        return None
    # A provider reports its build after the name ("GigaChat:2.0.28.2"): priced as the model.
    base = model.split(":", 1)[0]
    table = settings.llm_prices.get(model, settings.llm_prices.get(base))
    if table is not None:
        prompt = float(table.get("prompt", 0.0))
        return Price(prompt, float(table.get("completion", prompt)), float(table.get("cached_prompt", 0.0)))
    flat = settings.llm_price_per_1k_tokens.get(model, settings.llm_price_per_1k_tokens.get(base))
    return None if flat is None else Price(flat, flat, 0.0)


def cost(
    settings: Settings, model: str | None, prompt: int, completion: int, cached_prompt: int
) -> float | None:
    """The cost of these tokens of one model; None when the model has no price."""
    price = price_of(settings, model)
    if price is None:
        return None
    billed_prompt = max(0, prompt - cached_prompt)
    amount = (
        billed_prompt * price.prompt + cached_prompt * price.cached_prompt + completion * price.completion
    )
    return round(amount / 1000, 6)


def priced(settings: Settings) -> bool:
    return bool(settings.llm_prices or settings.llm_price_per_1k_tokens)
