"""``duragent serve``: check the address and the token, connect, run uvicorn.

Security by default: the server binds loopback unless told otherwise, and every API
request needs the bearer token. ``DURAGENT_API_TOKEN`` sets it (at least 16
characters). Without it, a loopback server makes one up at start and prints it with
the console's address (the token in the URL's fragment, which browsers never send to
the server); any other address is refused in one line, exit code 2: a server anyone on
the network can reach must not start unlocked.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Mapping
from typing import Final

import uvicorn

from duragent.worker.client import connect
from duragent.worker.commands import UserError
from duragent.worker.serve.app import ServeConfig, create_app
from duragent.worker.serve.auth import MIN_TOKEN_CHARS, TOKEN_ENV, is_loopback, new_token
from duragent.worker.settings import Settings

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080


def token_for(host: str, env: Mapping[str, str]) -> tuple[str, bool]:
    """The token to require, and whether it was made up here.

    Raises:
        UserError: No token on a non-loopback address, or one too short.
    """
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise UserError(f"{TOKEN_ENV} is {len(token)} characters; at least {MIN_TOKEN_CHARS}")
        return token, False
    if not is_loopback(host):
        raise UserError(
            f"refusing to serve on {host} without a token: set {TOKEN_ENV} "
            f"(at least {MIN_TOKEN_CHARS} characters), or serve on 127.0.0.1"
        )
    return new_token(), True


def serve(host: str, port: int, env: Mapping[str, str]) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit code.

    Raises:
        UserError: The token policy refuses the address (see :func:`token_for`).
        SettingsError: A setting of the environment cannot work.
        TemporalUnavailable: Temporal does not answer.
    """
    token, made_up = token_for(host, env)
    config = ServeConfig(token=token, settings=Settings.from_env(env))
    return asyncio.run(_serve(host, port, config, env, made_up=made_up))


async def _serve(
    host: str, port: int, config: ServeConfig, env: Mapping[str, str], *, made_up: bool
) -> int:
    client = await connect(env)
    sock = listen(host, port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, client),
            log_level="warning",
            # The console's own requests are not worth a line each; errors still are.
            access_log=False,
            # A long-lived event stream must not hold the server open when it stops.
            timeout_graceful_shutdown=5,
        )
    )
    _announce(host, sock.getsockname()[1], config.token, made_up=made_up)
    await server.serve(sockets=[sock])
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (``0``: any free port; the socket says which).

    Listening before uvicorn starts lets the address be printed, port and all, before
    the first request can come, and a taken port be one line, not a traceback.

    Raises:
        UserError: The address cannot be listened on.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _announce(host: str, port: int, token: str, *, made_up: bool) -> None:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    print(f"duragent serve: API at {base}/api/v1 (Authorization: Bearer <token>)")
    if made_up:
        print(f"duragent serve: no {TOKEN_ENV} set; this run's token is {token}")
        print(f"duragent serve: console at {base}/#token={token}")
    else:
        print(f"duragent serve: console at {base}/ (it asks for the token)")
    sys.stdout.flush()
