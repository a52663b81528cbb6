"""Custom search attributes: what ``duragent ls`` filters on in Temporal visibility.

Registered on the server at start-up (dev server flags, or ``ensure_registered`` at
worker start) and kept current by the workflow, so listing agents touches none of them.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from duragent.workflows.models import AgentStatus

STATUS = SearchAttributeKey.for_keyword("DuragentStatus")
MODEL = SearchAttributeKey.for_keyword("DuragentModel")
OWNER = SearchAttributeKey.for_keyword("DuragentOwner")

ALL = (STATUS, MODEL, OWNER)


def at_start(model: str, owner: str | None) -> TypedSearchAttributes:
    """An agent's attributes as it starts: status ``running``, its model and owner."""
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(STATUS, AgentStatus.RUNNING.value),
        SearchAttributePair(MODEL, model),
    ]
    if owner:
        pairs.append(SearchAttributePair(OWNER, owner))
    return TypedSearchAttributes(pairs)


DEV_SERVER = {key.name: "Keyword" for key in ALL}
"""``--search-attribute`` flags of ``temporal server start-dev``."""
