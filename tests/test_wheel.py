"""The built wheel, installed in a clean virtualenv, next to an application of its own.

The application has its own ``worker.py`` and ``workflows.py``, as Temporal's samples
do. Before duragent was one package, ``import worker`` inside duragent found the
application's file and duragent failed to import. Here the wheel is built, installed
with the locked dependencies into a new virtualenv, and the README's example runs from
the application's folder; then the stock worker loads the application's agents
(``duragent worker --load``) and the CLI starts one by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from duragent import __version__
from duragent.worker.devserver import DevServer
from duragent.worker.scripted_llm import ScriptedLLMServer
from tests.test_readme import example_env, example_script, library_example

ROOT = Path(__file__).parent.parent
APP_WORKER = '"""The application\'s own worker module."""\nNAME = "app worker"\n'
APP_WORKFLOWS = '"""The application\'s own workflows module."""\nNAME = "app workflows"\n'
CHECK = """\
import worker, workflows  # the application's modules, first on sys.path
import duragent
from duragent.worker.cli import main  # imports the whole implementation
print(worker.NAME, "|", workflows.NAME, "|", duragent.__version__, "|", duragent.Agent.__module__)
"""


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed")
    return found


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv[:3]}: {done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtualenv with the built wheel and the locked dependencies."""
    uv, where = _uv(), tmp_path_factory.mktemp("wheel")
    _run([uv, "build", "--wheel", "--out-dir", str(where / "dist"), str(ROOT)])
    [wheel] = (where / "dist").glob("duragent-*.whl")
    requirements = where / "requirements.txt"
    _run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--output-file", str(requirements)],
        cwd=ROOT,
    )  # fmt: skip
    _run([uv, "venv", "--python", sys.executable, str(where / "venv")])
    python = where / "venv" / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), "-r", str(requirements), str(wheel)])
    yield where / "venv"


def test_the_wheel_installs_one_package(venv: Path) -> None:
    [wheel] = (venv.parent / "dist").glob("duragent-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"duragent", f"duragent-{__version__}.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    assert "duragent/py.typed" in names and "duragent/workflows/agent.py" in names
    done = _run([str(venv / "bin" / "duragent"), "--version"])
    assert done.stdout.strip() == f"duragent {__version__}"


def test_an_application_with_its_own_worker_and_workflows_modules_runs_an_agent(
    venv: Path, temporal: DevServer, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "worker.py").write_text(APP_WORKER)
    (app / "workflows.py").write_text(APP_WORKFLOWS)
    (app / "check.py").write_text(CHECK)
    (app / "example.py").write_text(library_example().text)
    python = str(venv / "bin" / "python")
    checked = _run([python, "check.py"], cwd=app, env={"PATH": os.environ["PATH"]})
    assert checked.stdout.strip() == (
        f"app worker | app workflows | {__version__} | duragent.worker.agents"
    )
    with ScriptedLLMServer() as llm:
        llm.add_script(example_script())
        done = _run([python, "example.py"], cwd=app, env=example_env(temporal, llm, tmp_path))
    assert done.stdout.strip() == "city='Lyon' temperature_c=21.5"


def test_the_stock_worker_loads_the_applications_agents_and_tools(
    venv: Path, temporal: DevServer, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "worker.py").write_text(APP_WORKER)
    # The README example's tool and agent, without its main: a module for --load.
    (app / "app_agents.py").write_text(library_example().text.split("async def main")[0])
    duragent = str(venv / "bin" / "duragent")
    with ScriptedLLMServer() as llm:
        llm.add_script(example_script())
        env = example_env(temporal, llm, tmp_path)
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            [duragent, "worker", "--load", "app_agents"], cwd=app, env=env, stdout=log, stderr=log
        )
        try:
            listed = _run([duragent, "agents", "--json"], cwd=app, env=env)
            [spec] = json.loads(listed.stdout)
            assert (spec["name"], spec["output_type"]) == ("forecaster", "Forecast")
            assert "weather" in spec["tools"]
            done = _run(
                [duragent, "run", "--agent", "forecaster", "What is the weather in Lyon?",
                 "--wait", "--json"],
                cwd=app, env=env,
            )  # fmt: skip
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            log.close()
    result = json.loads(done.stdout.split("\n", 1)[1])  # after the agent id
    assert result["status"] == "completed"
    assert result["output"] == {"city": "Lyon", "temperature_c": 21.5}
    assert "loaded app_agents: agents forecaster" in (tmp_path / "worker.log").read_text()
