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
