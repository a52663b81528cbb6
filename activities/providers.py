"""What the worker knows about models, as data: family defaults and prices.

Model families
    A list of :class:`FamilyRule`. **Every** rule whose ``match`` (a regular expression,
    searched case-insensitively in the model name the agent asked for) matches applies,
    in table order, a later rule overriding an earlier one field by field; the agent's
    own :class:`~activities.models.ModelOptions` override them all. ``extra_body`` dicts
    are merged key by key (nested dicts too). A rule can also strip a suffix from the
    name that is sent (``o4-mini-high`` is sent as ``o4-mini`` with
    ``reasoning_effort="high"``), say whether the family wants the model's reasoning
    back in later requests (``send_reasoning``; DeepSeek answers 400 to it, GLM's
    interleaved thinking needs it), and which field carries the token limit
    (``max_tokens_param``).

Prices
    A list of :class:`Price`, in USD per million input and output tokens. The **first**
    entry whose ``match`` matches prices the call; unknown models cost 0.

The built-in tables are small and dated; a deployment extends them with a JSON or YAML
file (``DURAGENT_MODEL_FAMILIES``, ``DURAGENT_PRICES``) holding a list of the same
objects. A file's families apply after the built-in ones (so they win); a file's prices
are tried before the built-in ones. For example::

    # families.yaml
    - match: "^my-qwen3"
      options: {extra_body: {enable_thinking: true}}   # DashScope's switch
    # prices.yaml
    - {match: "^my-model", input_per_mtok: 0.5, output_per_mtok: 1.5}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from duragent.activities.models import ModelOptions

__all__ = [
    "BUILTIN_FAMILIES",
    "BUILTIN_PRICES",
    "FamilyRule",
    "ModelFamilies",
    "Price",
    "PriceTable",
    "ResolvedModel",
    "merge_options",
]

MaxTokensParam = Literal["max_completion_tokens", "max_tokens"]
_CACHE_LIMIT = 256  # model names remembered by a table; a worker serves a few


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    match: str = Field(min_length=1)
    """Regular expression searched (case-insensitively) in the model name."""

    @field_validator("match")
    @classmethod
    def _compiles(cls, match: str) -> str:
        try:
            re.compile(match)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
        return match


class FamilyRule(_Entry):
    """Defaults and flags for the models whose name matches."""

    options: ModelOptions = ModelOptions()
    """Default options; the agent's own options win."""
    strip_suffix: str | None = None
    """Removed from the end of the name before it is sent (e.g. ``-high``)."""
    send_reasoning: bool | None = None
    """Whether earlier turns' reasoning is sent back (as ``reasoning_content``)."""
    max_tokens_param: MaxTokensParam | None = None
    """Request field that carries ``max_completion_tokens`` (older servers: ``max_tokens``)."""


class Price(_Entry):
    """What a model's tokens cost."""

    input_per_mtok: float = Field(ge=0)
    """USD per million input (prompt) tokens."""
    output_per_mtok: float = Field(ge=0)
    """USD per million output (completion) tokens, reasoning included."""

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for this many tokens."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def _effort_suffix(level: str) -> FamilyRule:
    return FamilyRule(
        match=f"-{level}$", strip_suffix=f"-{level}", options=ModelOptions(reasoning_effort=level)
    )


def _extra(**body: JsonValue) -> ModelOptions:
    return ModelOptions(extra_body=body)


BUILTIN_FAMILIES: tuple[FamilyRule, ...] = (
    *(_effort_suffix(level) for level in ("minimal", "low", "medium", "high")),
    # DeepSeek's API takes max_tokens and answers 400 to reasoning_content in input;
    # R1 is sampled at 0.6 as its model card recommends.
    FamilyRule(match="deepseek", max_tokens_param="max_tokens", send_reasoning=False),
    FamilyRule(match="deepseek-(r1|reasoner)", options=ModelOptions(temperature=0.6)),
    # Qwen3 (thinking mode) as its model card recommends; "-nothink" switches thinking off
    # through the chat template (vLLM, SGLang).
    FamilyRule(match="qwen3", options=ModelOptions(temperature=0.6, top_p=0.95)),
    FamilyRule(
        match="qwen3.*-nothink$",
        strip_suffix="-nothink",
        options=_extra(chat_template_kwargs={"enable_thinking": False}),
    ),
    # GLM 4.5+ thinks between tool calls and wants that reasoning back.
    FamilyRule(
        match=r"glm-?(4\.[5-9]|[5-9])",
        send_reasoning=True,
        options=_extra(thinking={"type": "enabled"}),
    ),
    FamilyRule(
        match="glm.*-nothink$",
        strip_suffix="-nothink",
        options=_extra(thinking={"type": "disabled"}),
    ),
    # Kimi's thinking models need their reasoning in the context across tool calls.
    FamilyRule(match="kimi.*thinking", send_reasoning=True),
    # Gemini's OpenAI endpoint takes its own options under a nested "extra_body".
    FamilyRule(
        match="gemini.*-thoughts$",
        strip_suffix="-thoughts",
        options=_extra(extra_body={"google": {"thinking_config": {"include_thoughts": True}}}),
    ),
)
"""Built-in families; see the module docstring for how they combine."""

BUILTIN_PRICES: tuple[Price, ...] = tuple(
    Price(match=match, input_per_mtok=i, output_per_mtok=o)
    for match, i, o in (
        # Public list prices, USD per 1M tokens (late 2025); override them with a file.
        (r"(^|/)gpt-4o-mini", 0.15, 0.60),
        (r"(^|/)gpt-4o", 2.50, 10.00),
        (r"(^|/)gpt-4\.1-nano", 0.10, 0.40),
        (r"(^|/)gpt-4\.1-mini", 0.40, 1.60),
        (r"(^|/)gpt-4\.1", 2.00, 8.00),
        (r"(^|/)gpt-5-nano", 0.05, 0.40),
        (r"(^|/)gpt-5-mini", 0.25, 2.00),
        (r"(^|/)gpt-5", 1.25, 10.00),
        (r"(^|/)o4-mini", 1.10, 4.40),
        (r"(^|/)o3-mini", 1.10, 4.40),
        (r"(^|/)o3", 2.00, 8.00),
        (r"claude-(3-5-)?haiku", 0.80, 4.00),
        (r"claude-(3-[57]-)?sonnet", 3.00, 15.00),
        (r"claude-opus-4-[15]", 5.00, 25.00),
        (r"claude-(3-)?opus", 15.00, 75.00),
        (r"gemini-2\.5-flash-lite", 0.10, 0.40),
        (r"gemini-2\.5-flash", 0.30, 2.50),
        (r"gemini-2\.5-pro", 1.25, 10.00),
        (r"deepseek-(chat|reasoner)", 0.28, 0.42),
    )
)
"""Built-in prices; the first match wins, so specific names come first."""


def _compile(entries: Sequence[_Entry]) -> list[re.Pattern[str]]:
    return [re.compile(entry.match, re.IGNORECASE) for entry in entries]


_E = TypeVar("_E", bound="_Entry")


def _read_entries(path: str | Path, kind: type[_E]) -> list[_E]:
    """A JSON or YAML file holding a list of entries, validated.

    Raises:
        ValueError: The file cannot be read or parsed, or an entry is malformed.
    """
    import yaml  # only for a worker given such a file

    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read it: {err}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of {kind.__name__} entries")
    entries = []
    for n, item in enumerate(data):
        try:
            entries.append(kind.model_validate(item))
        except ValidationError as err:
            raise ValueError(f"{path}: entry {n} is not a {kind.__name__}: {err}") from None
    return entries


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def merge_options(base: ModelOptions, over: ModelOptions | None) -> ModelOptions:
    """``over``'s set fields on top of ``base``; ``extra_body`` merged key by key."""
    if over is None:
        return base
    update = {k: v for k, v in over if v is not None and k != "extra_body"}
    if over.extra_body:
        update["extra_body"] = _merge(base.extra_body or {}, over.extra_body)
    return base.model_copy(update=update) if update else base


@dataclass(frozen=True)
class ResolvedModel:
    """A model name with its family's defaults and the agent's options applied."""

    name: str
    """The name sent to the provider (suffixes stripped)."""
    options: ModelOptions
    send_reasoning: bool = False
    max_tokens_param: MaxTokensParam = "max_completion_tokens"

    def request_fields(self) -> dict[str, Any]:
        """The Chat Completions keyword arguments the options stand for (no ``None``)."""
        o = self.options
        fields: dict[str, Any] = {"model": self.name}
        for key in ("temperature", "top_p", "seed", "stop", "reasoning_effort"):
            value = getattr(o, key)
            if value is not None:
                fields[key] = value
        if o.max_completion_tokens is not None:
            fields[self.max_tokens_param] = o.max_completion_tokens
        if o.extra_body:
            fields["extra_body"] = o.extra_body
        return fields


class ModelFamilies:
    """The family table a worker applies to every LLM request.

    Args:
        rules: The rules, in the order they apply (later ones win).
    """

    def __init__(self, rules: Sequence[FamilyRule] = BUILTIN_FAMILIES) -> None:
        self._rules = tuple(rules)
        self._patterns = _compile(self._rules)
        self._cache: dict[str, ResolvedModel] = {}

    @classmethod
    def load(cls, path: str | Path | None) -> ModelFamilies:
        """The built-in rules followed by those of a JSON/YAML file (when given).

        Raises:
            ValueError: The file cannot be read, or holds a malformed rule.
        """
        extra = _read_entries(path, FamilyRule) if path is not None else []
        return cls([*BUILTIN_FAMILIES, *extra])

    def _defaults(self, model: str) -> ResolvedModel:
        hit = self._cache.get(model)
        if hit is not None:
            return hit
        name, options = model, ModelOptions()
        send_reasoning = False
        param: MaxTokensParam = "max_completion_tokens"
        for rule, pattern in zip(self._rules, self._patterns, strict=True):
            if not pattern.search(model):
                continue
            options = merge_options(options, rule.options)
            if rule.strip_suffix and name.endswith(rule.strip_suffix):
                name = name.removesuffix(rule.strip_suffix)
            send_reasoning = send_reasoning if rule.send_reasoning is None else rule.send_reasoning
            param = rule.max_tokens_param or param
        resolved = ResolvedModel(name, options, send_reasoning, param)
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[model] = resolved
        return resolved

    def resolve(
        self, model: str, options: ModelOptions | None = None, *, temperature: float | None = None
    ) -> ResolvedModel:
        """The name to send and the options to send with it.

        Args:
            model: The model name as the agent gives it.
            options: The agent's options; they override the family's.
            temperature: An explicit temperature (``LLMRequest.temperature``); wins over both.
        """
        family = self._defaults(model)
        merged = merge_options(family.options, options)
        if temperature is not None:
            merged = merged.model_copy(update={"temperature": temperature})
        if merged is family.options:
            return family
        return ResolvedModel(family.name, merged, family.send_reasoning, family.max_tokens_param)


class PriceTable:
    """USD per million tokens by model name; the first matching entry wins.

    Args:
        prices: The entries, most specific first.
    """

    def __init__(self, prices: Sequence[Price] = BUILTIN_PRICES) -> None:
        self._prices = tuple(prices)
        self._patterns = _compile(self._prices)
        self._cache: dict[str, Price | None] = {}

    @classmethod
    def load(cls, path: str | Path | None) -> PriceTable:
        """The entries of a JSON/YAML file (when given), then the built-in ones.

        Raises:
            ValueError: The file cannot be read, or holds a malformed entry.
        """
        extra = _read_entries(path, Price) if path is not None else []
        return cls([*extra, *BUILTIN_PRICES])

    def price(self, model: str) -> Price | None:
        """The price of ``model``, or ``None`` when no entry matches."""
        if model in self._cache:
            return self._cache[model]
        pairs = zip(self._prices, self._patterns, strict=True)
        price = next((p for p, pattern in pairs if pattern.search(model)), None)
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[model] = price
        return price

    def cost(self, models: Sequence[str], input_tokens: int, output_tokens: int) -> float:
        """USD for the tokens, priced by the first of ``models`` that has a price (else 0).

        Args:
            models: Names to try in order: the one sent, then the one the provider reported.
            input_tokens: Prompt tokens.
            output_tokens: Completion tokens.
        """
        for model in models:
            price = self.price(model) if model else None
            if price is not None:
                return price.cost(input_tokens, output_tokens)
        return 0.0
