r"""A scripted, OpenAI-compatible Chat Completions server for tests and the offline demo.

The engine talks to this server with the real ``openai`` client over real HTTP, exactly
as it talks to OpenAI, vLLM or LiteLLM. Instead of a model, *scripts* decide what the
assistant answers. Scripts are plain data (a dict, or a JSON file), so a test or a demo
can describe a whole agent run without writing code::

    {"name": "demo", "match": "some marker text",
     "steps": [
       {"content": "thinking...",
        "tool_calls": [{"name": "write_file",
                        "arguments": {"path": "a.txt", "content": "hi"}}]},
       {"faults": [{"status": 500}, {"status": 429, "retry_after": 1}],
        "tool_calls": [{"name": "_task_finish", "arguments": {"message": "done"}}]}
     ],
     "after_last": "repeat_last"}

Choosing the script
    ``match`` is a substring searched in the system (and developer) messages and in the
    first user message of a request. The first registered script that matches wins.
    A script whose ``match`` is ``"*"`` or absent is a default, tried only after every
    specific script. When nothing matches, the server answers 400 with an
    OpenAI-shaped error that says so.

Choosing the step
    The step is derived from the request itself: **step index = number of ``assistant``
    messages already in ``messages``**. The server keeps no conversation state, so a
    retried or replayed request always gets the same step. Past the last step,
    ``after_last`` decides: ``"repeat_last"`` (default) answers with the last step
    again, ``"error"`` answers 400.

A step
    ``content`` (text) and/or ``tool_calls`` (at least one of the two). Each tool call
    is ``{"name", "arguments", "id"?}``; ``arguments`` given as an object is serialised
    with ``json.dumps``, given as a string it is sent verbatim, which is how a test sends
    malformed JSON such as ``"{\"path\": "``. Tool-call ids default to
    ``call_<step>_<i>``. Optional fields: ``usage`` (any of ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``; missing ones are estimated as
    characters // 4, at least 1), ``finish_reason`` (default ``tool_calls`` when there
    are tool calls, else ``stop``), ``delay_seconds`` (sleep before every answer of this
    step), ``chunk_seconds`` (a stream's pause between its chunks, as a model that
    generates slowly; the request log keeps when each chunk left) and ``model`` (the
    model name reported; default: the requested one).

Stream shapes
    Real servers stream differently; a step can answer the way they do. ``reasoning``
    (text) is sent as ``reasoning_content`` deltas before the content (or in the
    message, when not streaming); ``reasoning_field: "reasoning"`` names it as
    OpenRouter and Ollama do. ``stream_tool_calls`` shapes the tool-call deltas:
    ``"indexed"`` (default, as OpenAI: id and name first, then argument pieces, each
    with its ``index``), ``"no_index"`` (the same pieces without ``index``),
    ``"whole_no_index"`` (each call whole in one delta, without ``index``),
    ``"repeat_name"`` (id and name repeated in every delta) and ``"reused_index"``
    (every call at index 0, told apart by its id).

Rules
    ``rules`` (optional) are checked before the index: ``{"when_last": "<regex>",
    "step": {...}}``; the first rule whose pattern is found in the text of the request's
    last message answers (recorded as step ``1000 + i``). Long-run tests use them to end
    or branch a run on what happened, since compaction changes the message count.

Faults
    ``faults`` lists what goes wrong on the first attempts of a step. Attempts are
    counted by the server per (script name, step index), from 0: attempt ``k`` gets
    ``faults[k]`` while ``k < len(faults)``, later attempts get the normal answer.
    A fault is exactly one of:

    - ``{"status": 429, "retry_after": 1, "message": "..."}``: an HTTP error with an
      OpenAI-shaped body; ``retry_after`` sets the ``Retry-After`` (seconds) and
      ``retry-after-ms`` headers.
    - ``{"delay_seconds": 5}``: a slow answer, then the normal response.
    - ``{"truncate_stream": true}``: a stream sends some chunks and then drops the
      connection, with no ``finish_reason`` and no ``[DONE]``; a non-streaming request
      gets its connection closed without any response.
    - ``{"context_length_exceeded": true}``: 400 with code ``context_length_exceeded``
      and OpenAI's "This model's maximum context length is ..." message.

HTTP surface
    ``POST /v1/chat/completions`` (``stream`` and ``stream_options.include_usage``
    honoured), ``GET /v1/models``, ``POST /_scripts`` (register a script at run time),
    ``POST /_outage`` (``{"script", "seconds", "status"?}``: every request of that
    script, or whose matched text contains ``script``, answers ``status``, default 503,
    for that long — a provider outage),
    ``GET /_requests`` (the request log), ``GET /healthz``. With an ``api_key``, the
    ``/v1`` endpoints answer 401 ``invalid_api_key`` to any other bearer token; the
    underscore endpoints are for the test harness and take no key. Streams use chunked
    transfer encoding, so a dropped stream is an error the client can see, not a short
    but well-formed body.

Run it in-process with :class:`ScriptedLLMServer`, or as a process::

    python -m duragent.worker.scripted_llm --port 8000 --script demo.json --api-key K
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Self

from duragent.worker._scripted_http import _HTTPServer
from duragent.worker._scripted_scripts import (
    DEFAULT_MODEL,
    RecordedRequest,
    ScriptSpec,
    _ScriptBook,
    load_scripts,
    parse_script,
)

# Also importable from here, as before the script models moved to their own module.
from duragent.worker._scripted_scripts import RULE_STEP_BASE as RULE_STEP_BASE
from duragent.worker._scripted_scripts import FaultSpec as FaultSpec
from duragent.worker._scripted_scripts import FinishReason as FinishReason
from duragent.worker._scripted_scripts import RuleSpec as RuleSpec
from duragent.worker._scripted_scripts import StepSpec as StepSpec
from duragent.worker._scripted_scripts import ToolCallShape as ToolCallShape
from duragent.worker._scripted_scripts import ToolCallSpec as ToolCallSpec
from duragent.worker._scripted_scripts import UsageSpec as UsageSpec

__all__ = [
    "DEFAULT_MODEL",
    "RecordedRequest",
    "ScriptSpec",
    "ScriptedLLMServer",
    "load_scripts",
    "main",
    "parse_script",
]

_SERVE_POLL_SECONDS = 0.05  # keeps stop() quick; serve_forever checks for shutdown this often


class ScriptedLLMServer:
    """An OpenAI-compatible Chat Completions server that answers from scripts.

    Serves on a background daemon thread; see the module docstring for the script
    format. Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with ScriptedLLMServer(api_key="test", scripts=[script]) as llm:
            client = AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)

    Args:
        host: Interface to bind.
        port: TCP port; 0 picks a free one (read it back from :attr:`base_url`).
        api_key: When set, ``/v1`` requests must carry ``Authorization: Bearer <api_key>``.
        scripts: Scripts registered before serving, in matching order.

    Raises:
        ValueError: A script is malformed or its name is registered twice.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        scripts: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self._address = (host, port)
        self._api_key = api_key
        self._book = _ScriptBook()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for script in scripts:
            self.add_script(script)

    def start(self) -> None:
        """Bind the socket and serve on a daemon thread.

        Raises:
            RuntimeError: The server is already running.
        """
        if self._http is not None:
            raise RuntimeError("the scripted LLM server is already running")
        self._http = _HTTPServer(self._address, self._book, self._api_key)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
            name=f"scripted-llm:{self._http.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, drop open connections and wait for handler threads; idempotent."""
        http, thread = self._http, self._thread
        if http is None or thread is None:
            return
        http.stopping.set()
        http.shutdown()
        http.close_connections()
        http.server_close()  # joins the handler threads
        thread.join()
        self._http = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._http is None:
            raise RuntimeError("the scripted LLM server is not running; call start() first")
        host, port = self._http.server_address[:2]
        return f"http://{_url_host(str(host))}:{port}/v1"

    def add_script(self, script: Mapping[str, Any]) -> None:
        """Register a script after those already registered.

        Raises:
            ValueError: The script is malformed or its name is already registered.
        """
        self._book.add(script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the chat-completions request log, oldest first."""
        return self._book.requests()

    def attempts(self, script: str) -> int:
        """How many chat-completions requests the named script has answered (any step)."""
        return self._book.attempts(script)

    def outage(self, script: str, seconds: float, status: int = 503) -> None:
        """Answer every request of ``script`` with ``status`` for the next ``seconds``.

        A provider outage as agents meet it: time-based, whatever the step or attempt.
        ``script`` is a script's name, or a marker: then the outage hits the requests
        whose system or first user message contain it, whichever script answers them.
        ``seconds=0`` ends an outage at once.
        """
        self._book.start_outage(script, seconds, status)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- command line --------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m duragent.worker.scripted_llm",
        description="Serve a scripted OpenAI-compatible Chat Completions API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    parser.add_argument(
        "--script",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON file with a script or an array of scripts (repeatable)",
    )
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; print the base URL once listening.

    Returns:
        The process exit status: 0 after a clean stop, 2 for a bad script file.
    """
    args = _parse_args(argv)
    try:
        scripts = [script for path in args.script for script in load_scripts(path)]
        server = ScriptedLLMServer(
            host=args.host, port=args.port, api_key=args.api_key, scripts=scripts
        )
    except (OSError, ValueError) as err:
        print(f"scripted LLM: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with server:
        print(f"scripted LLM listening on {server.base_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
