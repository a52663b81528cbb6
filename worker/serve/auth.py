"""Who may use ``duragent serve``: one bearer token, compared in constant time.

Every ``/api/`` request carries ``Authorization: Bearer TOKEN`` (``DURAGENT_API_TOKEN``,
or the one generated at start on a loopback address). Browsers cannot put a header on
an ``EventSource``, so the console trades its token once (``POST /api/v1/session``) for
an HttpOnly, SameSite=Strict cookie that opens the read-only ``GET …/events`` streams
and nothing else: a leaked cookie can watch, never answer, steer or cancel. The cookie
holds an HMAC of the token, not the token.

Not behind the token: the console's own files (HTML, JS, CSS; they hold no data, and a
browser's first visit cannot send a header) and ``GET /api/v1/health``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from http.cookies import SimpleCookie
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_ENV: Final = "DURAGENT_API_TOKEN"
MIN_TOKEN_CHARS: Final = 16
"""A shorter token is refused at start: a guessable token is no lock."""
EVENTS_COOKIE: Final = "duragent_events"
PUBLIC_API: Final = frozenset({"/api/v1/health"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name other than localhost may resolve anywhere
        return False


def new_token() -> str:
    """A fresh random token (256 bits), for a loopback server started without one."""
    return secrets.token_urlsafe(32)


def events_cookie(token: str) -> str:
    """The cookie value that opens the event streams: an HMAC of the token."""
    return hmac.new(token.encode(), b"duragent events v1", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    # Constant time: how long a wrong token takes to refuse says nothing of the right one.
    return hmac.compare_digest(given.encode(), expected.encode())


class BearerAuth:
    """ASGI middleware: ``/api/`` requests need the token (or, for events, its cookie).

    Args:
        app: The application behind it.
        token: The one accepted token.
    """

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self._token = token
        self._cookie = events_cookie(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401."""
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong bearer token (Authorization: Bearer …)"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="duragent"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})

    def _allowed(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if not path.startswith("/api/") or path in PUBLIC_API:
            return True
        headers = dict(scope["headers"])
        scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and _same(given.strip(), self._token):
            return True
        if scope["method"] == "GET" and path.endswith("/events"):
            cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
            morsel = cookie.get(EVENTS_COOKIE)
            return morsel is not None and _same(morsel.value, self._cookie)
        return False
