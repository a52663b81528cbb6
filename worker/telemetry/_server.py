"""The worker's HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

One small threaded server from the standard library, so a scrape or a probe never
waits on the worker's event loop, and the loop never waits on a slow scraper.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("duragent.telemetry")

Check = Callable[[], bool]


class MetricsServer:
    """Serve a Prometheus registry and two health checks until closed.

    ``/healthz`` (liveness) answers 200 while ``live()`` is true: the worker runs. A
    Kubernetes liveness probe restarts a worker whose polling died. ``/readyz``
    (readiness) answers 200 while ``ready()`` is true: the worker polls and is not
    shutting down.

    Args:
        registry: What ``/metrics`` serves.
        host: The address to listen on.
        port: The port; ``0`` picks a free one (see :attr:`port`).
        live: Liveness check; always true when not given.
        ready: Readiness check; always true when not given.

    Raises:
        OSError: The port is taken or the address is not local.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        live: Check | None = None,
        ready: Check | None = None,
    ) -> None:
        self.live: Check = live or (lambda: True)
        self.ready: Check = ready or (lambda: True)
        self._server = ThreadingHTTPServer((host, port), _handler(registry, self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="duragent-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _handler(registry: CollectorRegistry, server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._answer(200, encoder(registry), content_type)
            elif path in ("/healthz", "/readyz"):
                ok = server.live() if path == "/healthz" else server.ready()
                text = b"ok\n" if ok else b"not ok\n"
                self._answer(200 if ok else 503, text, "text/plain; charset=utf-8")
            else:
                self._answer(404, b"try /metrics, /healthz or /readyz\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # A scrape every few seconds is not news; the access log would drown the
            # worker's own.
            log.debug("metrics endpoint: " + format, *args)

    return Handler
