"""duragent as a library: agents defined in code, typed handles, the catalog, providers.

Pure checks of the definitions, then runs on the real dev server with workers built the
way ``duragent.Worker`` builds them and the scripted LLM over real HTTP.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any

import pytest
from pydantic import BaseModel, Field, field_validator
from temporalio.client import WorkflowUpdateFailedError

import duragent
from duragent.activities.llm_providers import ProviderConfig
from duragent.worker.agents import CONTROL_TOOLS, Agent, AgentNotFound, agent_catalog
from duragent.worker.config_file import ConfigFile
from duragent.worker.handle import AgentFailed
from duragent.worker.main import agent_workers
from duragent.worker.plugin import load_modules
from duragent.worker.scripted_llm import ScriptedLLMServer
from duragent.workflows.models import AgentStatus, ApprovalPolicy
from tests.conftest import Harness, eventually
from tests.test_agent import call, finish


class Forecast(BaseModel):
    city: str
    temperature_c: float = Field(ge=-90, le=60)

    @field_validator("city")
    @classmethod
    def _known(cls, city: str) -> str:
        if city.lower() == "atlantis":  # what no JSON Schema says: pydantic's own check
            raise ValueError("no weather station in Atlantis")
        return city.title()


@duragent.tool
async def weather(city: str) -> str:
    """Current temperature in a city, in Celsius.

    Args:
        city: The city's name.
    """
    return f"21.5 in {city}"


forecaster = Agent(
    name="forecaster",
    model="scripted",
    instructions="Report the weather of the city you are given.",
    description="Weather reports",
    tools=[weather, "_read_file"],
    output_type=Forecast,
    max_cycles=6,
)


NICE = {"city": "Nice", "temperature_c": 30}
ATLANTIS = {"city": "Atlantis", "temperature_c": 12}

# --- definitions, pure ------------------------------------------------------------------


def test_a_definition_becomes_the_input_a_run_starts_with() -> None:
    input = forecaster.input("Lyon?", owner="ops", max_cycles=3)
    assert input.task == "Lyon?"
    assert input.model == "scripted"
    assert input.system_prompt == "Report the weather of the city you are given."
    assert input.tools == [*CONTROL_TOOLS, "weather", "_read_file"]
    assert input.owner == "ops" and input.max_cycles == 3
    assert input.agent == "forecaster"
    assert input.output_schema is not None
    assert input.output_schema["required"] == ["city", "temperature_c"]


def test_overrides_must_name_a_setting() -> None:
    with pytest.raises(TypeError, match="no such agent setting: colour"):
        forecaster.input("x", colour="blue")


def test_a_plain_function_or_a_non_model_output_is_refused() -> None:
    async def loose(city: str) -> str:
        return city

    with pytest.raises(TypeError, match=r"decorate the function with @duragent\.tool"):
        Agent(name="a", tools=[loose])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="output_type must be a pydantic model"):
        Agent(name="a", output_type=dict)


def test_sub_agents_bring_their_tools_and_the_sub_task_tools() -> None:
    lead = Agent(name="lead", sub_agents=[forecaster])
    assert "_create_sub_task" in lead.tool_names
    assert [t.name for t in lead.functions()] == ["weather"]
    spec = lead.spec()
    assert spec.sub_agents == ["forecaster"]
    assert spec.input.sub_agents["forecaster"].tools == forecaster.tool_names


def test_the_worker_finds_agents_in_loaded_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("user_agents")
    module.forecaster = forecaster  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "user_agents", module)
    loaded = load_modules(["user_agents"])
    assert loaded.agents == (forecaster,)
    assert "agents forecaster" in loaded.summary()


# --- runs -------------------------------------------------------------------------------


def _workers(h: Harness, *agents: Agent[Any], **settings: Any) -> Any:
    return agent_workers(
        h.client, dataclasses.replace(h.settings(), **settings), agents=list(agents)
    )


async def test_a_typed_agent_retries_an_invalid_output_then_returns_the_model(
    harness: Harness,
) -> None:
    task = harness.script(
        [
            {"tool_calls": [call("weather", city="lyon")]},
            {"tool_calls": [call("_task_finish", message="hot", output={"city": "lyon"})]},
            {"tool_calls": [call("_task_finish", message="wet", output=ATLANTIS)]},
            {
                "tool_calls": [
                    call(
                        "_task_finish",
                        message="done",
                        output={"city": "lyon", "temperature_c": 21.5},
                    )
                ]
            },
        ]
    )
    async with _workers(harness, forecaster):
        handle = await duragent.start(
            harness.client, forecaster, task, task_queue=harness.task_queue
        )
        report = await handle
    assert report == Forecast(city="Lyon", temperature_c=21.5)  # the model's validator ran
    bodies = [r.body for r in harness.requests()]
    assert "21.5 in lyon" in str(bodies[1]["messages"])
    refused = str(bodies[2]["messages"][-1]["content"])
    assert "temperature_c" in refused and "required" in refused  # the schema's check
    refused = str(bodies[3]["messages"][-1]["content"])
    assert "not a valid Forecast" in refused  # the definition's own, with pydantic's words
    assert "city: Value error, no weather station in Atlantis" in refused
    outcome = await handle.outcome()
    assert outcome.output == {"city": "lyon", "temperature_c": 21.5}


async def test_a_client_starts_a_definition_by_name_through_the_catalog(
    harness: Harness,
) -> None:
    task = harness.script(
        [
            {
                "tool_calls": [
                    call("_task_finish", message="ok", output={"city": "Nice", "temperature_c": 30})
                ]
            }
        ]
    )
    async with _workers(harness, forecaster):
        catalog = await agent_catalog(harness.client, harness.task_queue)
        assert [a.name for a in catalog.agents] == ["forecaster"]
        listed = catalog.agents[0]
        assert listed.output_type == "Forecast" and "weather" in listed.tools
        assert listed.worker  # who answered
        handle = await duragent.start(
            harness.client, "forecaster", task, task_queue=harness.task_queue, max_cycles=2
        )
        assert await handle == NICE  # the type is the worker's: JSON here
        assert (await handle.outcome()).status is AgentStatus.COMPLETED
        with pytest.raises(AgentNotFound, match="no agent named 'nobody'"):
            await duragent.start(harness.client, "nobody", task, task_queue=harness.task_queue)


async def test_the_handle_answers_approves_and_reports_a_failed_end(harness: Harness) -> None:
    careful = Agent(
        name="careful",
        model="scripted",
        tools=[weather],
        approval=ApprovalPolicy(tools={"weather": duragent.ApprovalMode.ALWAYS}),
        max_cycles=3,
    )
    task = harness.script(
        [
            {"tool_calls": [call("_ask_user", question="Which city?", options=["Lyon", "Nice"])]},
            {"tool_calls": [{"id": "call_w", **call("weather", city="Nice")}]},
            {"content": "no tool call"},
        ]
    )
    async with _workers(harness, careful):
        handle = await duragent.start(harness.client, careful, task, task_queue=harness.task_queue)
        await eventually(
            lambda: _status_is(handle, AgentStatus.WAITING_USER), "the question is pending"
        )
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.reply("Nice", question_id="stale")  # the validator refuses it
        await handle.reply("Nice")
        await eventually(
            lambda: _status_is(handle, AgentStatus.WAITING_APPROVAL), "the approval is pending"
        )
        pending = await handle.pending()
        assert [a.call_id for a in pending.approvals] == ["call_w"]
        await handle.approve("call_w")
        with pytest.raises(AgentFailed, match="max_cycles") as failed:
            await handle
    assert failed.value.result is not None and failed.value.result.cycles == 3
    assert "21.5 in Nice" in str(harness.requests()[2].body["messages"])


async def _status_is(handle: duragent.AgentHandle[Any], status: AgentStatus) -> bool:
    return (await handle.status()).status is status


async def test_two_providers_on_one_worker_each_get_their_agents_calls(
    harness: Harness,
) -> None:
    answer = [finish("from somewhere")]
    default_task = harness.script(answer)
    with ScriptedLLMServer() as local:
        local.add_script({"name": "local", "match": "local-task", "steps": answer})
        config = ConfigFile(
            providers={"local": ProviderConfig(base_url=local.base_url, api_key_env="LOCAL_KEY")}
        )
        hosted = Agent(name="hosted", model="scripted")
        on_prem = Agent(name="on-prem", model="local:small-model")
        async with _workers(
            harness, hosted, on_prem, config=config, provider_keys={"local": "k-local"}
        ):
            first = await duragent.start(
                harness.client, hosted, default_task, task_queue=harness.task_queue
            )
            second = await duragent.start(
                harness.client, on_prem, "local-task", task_queue=harness.task_queue
            )
            assert await first == "from somewhere"
            assert await second == "from somewhere"
        [sent] = [r for r in local.requests if r.script == "local"]
        assert sent.body["model"] == "small-model"  # the provider's prefix is not sent
    assert [r.body["model"] for r in harness.requests()] == ["scripted"]
