"""The scripted LLM server's HTTP layer: routes, auth, JSON answers and chunked SSE.

A :class:`_Handler` per connection turns requests into calls on the script book and
writes out the plans :mod:`duragent.worker._scripted_answers` makes;
:class:`_HTTPServer` tracks open connections so that ``stop()`` ends promptly.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from duragent.worker._scripted_answers import (
    _error,
    _JsonReply,
    _Plan,
    _plan_completion,
    _Reply,
    _StreamReply,
)
from duragent.worker._scripted_scripts import _ScriptBook

# Named after the public module, as before the split, so logging settings still apply.
_log = logging.getLogger("duragent.worker.scripted_llm")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], book: _ScriptBook, api_key: str | None) -> None:
        super().__init__(address, _Handler)
        self.book = book
        self.api_key = api_key
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket) -> bool:
        """Register an open connection; ``False`` when the server is stopping."""
        with self._connections_lock:
            if self.stopping.is_set():
                return False
            self._connections.add(connection)
            return True

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections, so stop() ends."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the peer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; JSON carries Content-Length, streams are chunked
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers, body and stream chunks are separate small writes; without this, Nagle's
        # algorithm meets the client's delayed ACK and every answer takes ~40 ms longer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.server.track(self.connection):
            self.close_connection = True

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """Serve the read-only endpoints."""
        self._guarded(self._route_get)

    def do_POST(self) -> None:
        """Serve chat completions and script registration."""
        self._guarded(self._route_post)

    def _guarded(self, route: Callable[[], None]) -> None:
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a cancelled call, a timeout): nothing to answer.
            self.close_connection = True

    def _route_get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_json(200, {"status": "ok"})
        elif path == "/_requests":
            self._send_json(200, {"requests": [asdict(r) for r in self.server.book.requests()]})
        elif path == "/v1/models" and self._authorized():
            self._send_models()
        elif path != "/v1/models":
            self._send_reply(_error(404, f"Unknown request URL: GET {path}", "unknown_url"))

    def _route_post(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_json()
        if body is None:
            self._send_reply(_error(400, "The request body is not a JSON object."))
        elif path == "/_scripts":
            self._register(body)
        elif path == "/_outage":
            self._outage(body)
        elif path == "/v1/chat/completions" and self._authorized():
            self._complete(body)
        elif path != "/v1/chat/completions":
            self._send_reply(_error(404, f"Unknown request URL: POST {path}", "unknown_url"))

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_reply(_error(401))
        return False

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _register(self, body: dict[str, Any]) -> None:
        try:
            spec = self.server.book.add(body)
        except ValueError as err:
            self._send_reply(_error(400, str(err), "invalid_script"))
        else:
            self._send_json(200, {"registered": spec.name})

    def _outage(self, body: dict[str, Any]) -> None:
        script, seconds, status = body.get("script"), body.get("seconds"), body.get("status", 503)
        if not isinstance(script, str) or not isinstance(seconds, int | float):
            self._send_reply(_error(400, "an outage needs 'script' and 'seconds'"))
            return
        self.server.book.start_outage(script, float(seconds), int(status))
        self._send_json(200, {"outage": script, "seconds": seconds, "status": status})

    def _send_models(self) -> None:
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "duragent"}
            for name in self.server.book.model_names()
        ]
        self._send_json(200, {"object": "list", "data": models})

    def _complete(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("messages"), list):
            self._send_reply(_error(400, "'messages' must be an array.", "invalid_messages"))
            return
        plan = _plan_completion(self.server.book, body)
        # Logged on arrival, before any delay: a test can see that a call is in flight
        # (and kill its worker then), and a client that got its answer finds it here.
        self.server.book.record(plan.record)
        if plan.delay and self.server.stopping.wait(plan.delay):
            self.close_connection = True  # stopping: give up on the slow answer
            return
        self._send_reply(plan.reply, plan)

    def _send_reply(self, reply: _Reply, plan: _Plan | None = None) -> None:
        if isinstance(reply, _JsonReply):
            self._send_json(reply.status, reply.body, reply.headers)
        elif isinstance(reply, _StreamReply):
            self._send_stream(reply, plan)
        else:
            self.close_connection = True

    def _send_json(
        self, status: int, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: _StreamReply, plan: _Plan | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pace = plan.pace if plan else 0.0
        for n, event in enumerate(reply.events):
            if n == reply.truncate_after or (n and pace and self.server.stopping.wait(pace)):
                # No terminating chunk: the client sees an incomplete body, not an early end.
                self.close_connection = True
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
            if plan is not None:
                plan.record.chunk_times.append(time.time())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
