"""The agent catalog: what agent definitions the workers of a task queue registered.

Agent definitions (:class:`duragent.Agent`) live in the workers' code, with the tools
they use. A client that starts one by name, or lists them (``duragent agents``), asks
a worker of the queue: this one-step workflow runs the local activity
``duragent.list_agents`` on whichever worker takes it and returns its answer. The
answer is then the same code that will run the agent's tools, and nothing has to be
kept in sync elsewhere; the price is one short workflow per lookup (about a tenth of a
second on an idle cluster), and no answer while no worker runs.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, JsonValue
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from duragent.workflows.models import AgentInput

WORKFLOW_NAME = "duragent.catalog"
LIST_AGENTS = "duragent.list_agents"
"""The local activity every worker registers (see ``duragent.worker.agents``)."""
# A worker answers from memory; two attempts cover one that is shutting down.
_LOOKUP = timedelta(seconds=10)


class AgentSpec(BaseModel):
    """One registered agent definition, as a client sees it."""

    name: str
    description: str = ""
    input: AgentInput
    """Everything a run of it starts with, but the task (empty here)."""
    output_type: str | None = None
    """The output model's name (its schema is ``input.output_schema``)."""
    tools: list[str] = Field(default_factory=list)
    """The tools it is offered, as the worker names them."""
    sub_agents: list[str] = Field(default_factory=list)
    worker: str = ""
    """The identity of the worker that answered."""


class AgentCatalog(BaseModel):
    """The definitions one worker of the queue has."""

    agents: list[AgentSpec] = Field(default_factory=list)

    def get(self, name: str) -> AgentSpec | None:
        """The definition of that name, or ``None``."""
        return next((a for a in self.agents if a.name == name), None)


class CatalogRequest(BaseModel):
    """What to list: every definition, or the one named."""

    name: str | None = Field(None, max_length=200)
    extra: dict[str, JsonValue] = Field(default_factory=dict)
    """Reserved: filters added later, with defaults, so old workers ignore them."""


@workflow.defn(name=WORKFLOW_NAME)
class CatalogWorkflow:
    """Answers with the catalog of the worker that runs it."""

    @workflow.run
    async def run(self, request: CatalogRequest) -> AgentCatalog:
        """The worker's definitions (the one named, when a name is given)."""
        catalog: AgentCatalog = await workflow.execute_local_activity(
            LIST_AGENTS,
            request,
            result_type=AgentCatalog,
            start_to_close_timeout=_LOOKUP,
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
        return catalog


# --- a definition's own validation of a typed output -----------------------------------

DEFINITION_OUTPUT_PATCH = "definition-output-check"
"""Runs started from a definition have their output validated by its type, too."""
CHECK_OUTPUT = "duragent.check_output"
"""The local activity every worker registers (see ``duragent.worker.agents``)."""


class OutputCheckRequest(BaseModel):
    """A ``_task_finish`` output that matched the schema, for its definition's type."""

    agent: str
    output: JsonValue = None


class OutputCheck(BaseModel):
    """The verdict: ``error`` is what the model is told, ``None`` is a pass."""

    error: str | None = None


async def definition_verdict(agent: str, output: JsonValue) -> OutputCheck:
    """Ask the worker's definition ``agent`` whether its output type takes ``output``.

    JSON Schema cannot say everything a pydantic model checks (its validators, types
    such as dates): the model's own validation gives the model pydantic's message. A
    worker without the definition passes it (the schema was met); so does one whose
    lookup fails, as the run must not hang on a check the schema already made.
    """
    try:
        verdict: OutputCheck = await workflow.execute_local_activity(
            CHECK_OUTPUT,
            OutputCheckRequest(agent=agent, output=output),
            result_type=OutputCheck,
            start_to_close_timeout=_LOOKUP,
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
    except ActivityError as err:
        workflow.logger.warning("output of %s not checked by its definition: %s", agent, err)
        return OutputCheck()
    return verdict
