"""Secrets out of everything that leaves the worker.

The worker knows its secrets: the LLM key it was configured with, and the values of
its environment that look like secrets (names with KEY, TOKEN, SECRET, PASSWORD, DSN,
...; passwords inside URLs such as ``DATABASE_URL``; the names a deployment declares
in ``DURAGENT_SECRET_ENV``). The entry point collects them once
(:func:`secrets_in_environment`) and builds a :class:`Redactor`; the activity boundary
(:mod:`activities.boundary`) runs every activity's failure message and result through
it, so a provider error that quotes the key or a command that prints a password puts
``[redacted]`` into history, the transcript store and the next LLM request instead.

Redaction is the second line: the sandbox keeps commands from seeing the worker's
environment at all (:mod:`activities.tools.sandbox`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel

REDACTED = "[redacted]"

MIN_SECRET_CHARS = 8
"""Shorter values are not redacted: replacing every ``1`` or ``true`` in a result would
garble it, and such values are no secret worth the name."""

# Names whose values are secrets (the LLM key, Temporal credentials, cloud keys, DSNs).
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|DSN|PRIVATE|COOKIE|SESSION", re.IGNORECASE
)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)

ModelT = TypeVar("ModelT", bound=BaseModel)


def secrets_in_environment(env: Mapping[str, str], declared: Iterable[str] = ()) -> list[str]:
    """The secret values of an environment.

    Args:
        env: The environment (``os.environ`` in the entry point).
        declared: Names whose values are secrets whatever they are called.

    Returns:
        Whole values of secret-looking or declared names, and the passwords of URLs
        (``scheme://user:password@host``) in any value.
    """
    names = set(declared)
    found: list[str] = []
    for name, value in env.items():
        if name in names or SECRET_NAME.search(name):
            found.append(value)
        found.extend(_url_passwords(value))
    return found


def _url_passwords(value: str) -> list[str]:
    passwords = []
    for match in _URL.finditer(value):
        try:
            password = urlsplit(match.group()).password
        except ValueError:  # an unparsable port; there is no password to find then
            continue
        if password:
            passwords.append(password)
    return passwords


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values by ``[redacted]``.

    Args:
        secrets: The values to hide; short ones (under ``MIN_SECRET_CHARS``) and
            duplicates are dropped.
    """

    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        unique = {s for s in self.secrets if len(s) >= MIN_SECRET_CHARS}
        # Longest first: a secret that contains another is replaced whole.
        object.__setattr__(self, "secrets", tuple(sorted(unique, key=len, reverse=True)))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def redact_model(self, value: ModelT) -> ModelT:
        """A pydantic model with every secret in any of its strings replaced.

        The model is only rebuilt when a secret is in it: the common case costs one
        serialization and a substring search per secret.
        """
        text = value.model_dump_json()
        cleaned = text
        for secret in self.secrets:
            # Searched as JSON writes it (quotes and backslashes escaped), so a match
            # is always inside one string and the replacement keeps the JSON valid.
            form = json.dumps(secret, ensure_ascii=False)[1:-1]
            if form in cleaned:
                cleaned = cleaned.replace(form, REDACTED)
        if cleaned == text:
            return value
        return type(value).model_validate_json(cleaned)
