"""Every snippet of the README works: code runs, configuration loads, commands parse.

- the library example runs as written, as a program, against the session's dev server
  and a scripted LLM over real HTTP;
- every other ``python`` block is executed as a module;
- every ``toml`` block loads as the worker's configuration file, every ``yaml`` block
  as what it documents (family rules, prices, a graph);
- every ``duragent`` command of a ``sh`` block parses with the CLI's own parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from duragent.activities.providers import ModelFamilies, PriceTable
from duragent.worker.cli import build_parser
from duragent.worker.config_file import load_config_file
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows.graph_load import load_graph

README = Path(__file__).parent.parent / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Snippet:
    language: str
    text: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.language})"


def snippets(language: str) -> list[Snippet]:
    text = README.read_text()
    return [
        Snippet(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
        if m.group(1) == language
    ]


def library_example() -> Snippet:
    [example] = [s for s in snippets("python") if "asyncio.run(main())" in s.text]
    return example


EXAMPLE = README.parent / "examples" / "library"


def example_script() -> dict[str, object]:
    """What the scripted LLM answers the example's task with: a tool call, a typed end."""
    script: dict[str, object] = json.loads((EXAMPLE / "forecast_script.json").read_text())
    return script


def example_env(temporal: DevServer, llm: ScriptedLLMServer, tmp_path: Path) -> dict[str, str]:
    """The environment a user runs the example in: a server, an LLM, a fresh queue."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "USER"}}
    return {
        **keep,
        "TEMPORAL_ADDRESS": temporal.address,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "test-key",
        "DURAGENT_TASK_QUEUE": f"readme-{tmp_path.name}",
        "DURAGENT_WORKSPACE": str(tmp_path / "workspace"),
        "DURAGENT_STORE_DIR": str(tmp_path / "store"),
        "DURAGENT_SHELL_SANDBOX": "none",
    }


def test_the_library_example_runs_as_written(temporal: DevServer, tmp_path: Path) -> None:
    program = EXAMPLE / "forecast.py"
    assert program.read_text() == library_example().text  # the file the README shows
    assert len(library_example().text.strip().splitlines()) <= 40
    with ScriptedLLMServer() as llm:
        llm.add_script(example_script())
        done = subprocess.run(
            [sys.executable, str(program)],
            env=example_env(temporal, llm, tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "city='Lyon' temperature_c=21.5"
        tool_turn = llm.requests[1].body["messages"]
        assert any(m["role"] == "tool" and m["content"] == "21.5" for m in tool_turn)


@pytest.mark.parametrize("snippet", snippets("python"), ids=str)
def test_every_python_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    if snippet == library_example():
        pytest.skip("run as a program above")
    namespace: dict[str, object] = {"__name__": "readme_snippet"}
    exec(compile(snippet.text, str(snippet), "exec"), namespace)
    assert len(namespace) > 2  # it defined something


@pytest.mark.parametrize("snippet", snippets("toml"), ids=str)
def test_every_toml_snippet_is_a_valid_configuration(snippet: Snippet, tmp_path: Path) -> None:
    path = tmp_path / "duragent.toml"
    path.write_text(snippet.text)
    config = load_config_file(path)
    assert config.providers or config.mcp


@pytest.mark.parametrize("snippet", snippets("yaml"), ids=str)
def test_every_yaml_snippet_loads_as_what_it_documents(snippet: Snippet, tmp_path: Path) -> None:
    data = yaml.safe_load(snippet.text)
    path = tmp_path / "snippet.yaml"
    path.write_text(snippet.text)
    if isinstance(data, dict) and "nodes" in data:
        load_graph(snippet.text, source=str(snippet))
    elif all("input_per_mtok" in entry for entry in data):
        PriceTable.load(str(path))
    else:
        ModelFamilies.load(str(path))


def _commands(snippet: Snippet) -> list[list[str]]:
    found = []
    for line in snippet.text.splitlines():
        words = shlex.split(line.split(" #")[0].strip().rstrip("&").strip(), comments=True)
        while words and ("=" in words[0] or words[0] in {"uv", "run"}):
            words = words[1:]  # VAR=value and `uv run` before the command
        if words and words[0] == "duragent":
            found.append(words[1:])
    return found


@pytest.mark.parametrize("snippet", snippets("sh"), ids=str)
def test_every_duragent_command_in_a_shell_snippet_parses(snippet: Snippet) -> None:
    parser = build_parser()
    for argv in _commands(snippet):
        parser.parse_args(argv)  # SystemExit (exit 2) on a mistake
