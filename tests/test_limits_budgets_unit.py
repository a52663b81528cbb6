"""Pure functions behind size bounds and budgets: no Temporal, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from duragent.activities import limits
from duragent.activities.models import Message, Role, TokenUsage, ToolCall
from duragent.workflows import budgets, policy
from duragent.workflows.models import AgentInput, ApprovalAction, ApprovalDecision, SubAgentSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- limits.truncate / bound_turn -------------------------------------------------------


def test_truncate_keeps_text_that_fits() -> None:
    text = "x" * 1_000
    assert limits.truncate(text, 1_000) is text


def test_truncate_cuts_to_the_limit_keeping_head_tail_and_a_note() -> None:
    text = "H" * 6_000 + "T" * 6_000
    cut = limits.truncate(text, 4_000)
    assert limits.size(cut) <= 4_000
    assert cut.startswith("HHH") and cut.endswith("TTT")
    assert "bytes cut: over the 4,000-byte limit" in cut


def test_truncate_counts_bytes_and_never_splits_a_character() -> None:
    text = "é" * 5_000  # 2 bytes each
    cut = limits.truncate(text, 4_000)
    assert limits.size(cut) <= 4_000
    cut.encode("utf-8")  # a split character would have been dropped, not kept broken
    assert set(cut.split("\n")[0]) == {"é"}


def test_bound_turn_leaves_a_small_turn_alone() -> None:
    turn = Message(
        role=Role.ASSISTANT,
        content="fine",
        tool_calls=[ToolCall(id="a", name="_write_file", arguments='{"path": "a"}')],
    )
    assert limits.bound_turn(turn) is turn


def test_bound_turn_refuses_an_oversize_call_and_keeps_the_others() -> None:
    big = '{"content": "' + "x" * (limits.MAX_ARGUMENTS_BYTES + 1) + '"}'
    turn = Message(
        role=Role.ASSISTANT,
        content="",
        tool_calls=[
            ToolCall(id="big", name="_write_file", arguments=big),
            ToolCall(id="ok", name="_list_files", arguments="{}"),
        ],
    )
    bounded = limits.bound_turn(turn)
    refused, kept = bounded.tool_calls
    assert refused.arguments == "{}" and refused.refused is not None
    assert "the arguments of _write_file" in refused.refused and "over the limit" in refused.refused
    assert kept == turn.tool_calls[1]


def test_bound_turn_refuses_calls_past_the_turn_budget() -> None:
    # Each fits alone; the third passes the 512 KiB of one turn.
    each = "x" * (limits.MAX_ARGUMENTS_BYTES - 10)
    calls = [ToolCall(id=str(i), name="_write_file", arguments=each) for i in range(3)]
    bounded = limits.bound_turn(Message(role=Role.ASSISTANT, content="", tool_calls=calls))
    assert [c.refused is None for c in bounded.tool_calls] == [True, True, False]


def test_bound_turn_at_the_bound_is_accepted() -> None:
    exact = "x" * limits.MAX_ARGUMENTS_BYTES
    turn = Message(
        role=Role.ASSISTANT, content="", tool_calls=[ToolCall(id="a", name="t", arguments=exact)]
    )
    assert limits.bound_turn(turn).tool_calls[0].refused is None


def test_bound_turn_truncates_content_and_reasoning() -> None:
    text = "y" * (limits.MAX_TEXT_BYTES * 2)
    turn = Message(role=Role.ASSISTANT, content=text, reasoning=text)
    bounded = limits.bound_turn(turn)
    assert bounded.content is not None and bounded.reasoning is not None
    assert limits.size(bounded.content) <= limits.MAX_TEXT_BYTES
    assert limits.size(bounded.reasoning) <= limits.MAX_TEXT_BYTES
    assert "bytes cut" in bounded.content


# --- policy: steering, decisions, refused calls, the current turn ------------------------


def test_steering_at_the_bound_fits_and_over_it_does_not() -> None:
    assert policy.steering_too_large("x" * limits.MAX_SAY_BYTES, []) is None
    problem = policy.steering_too_large("x" * (limits.MAX_SAY_BYTES + 1), [])
    assert problem is not None and "over the limit of 32,768" in problem


def test_steering_that_would_overfill_the_inbox_is_refused() -> None:
    inbox = ["x" * limits.MAX_SAY_BYTES] * 4  # exactly the inbox bound
    problem = policy.steering_too_large("one more", inbox)
    assert problem is not None and "still unread" in problem
    assert policy.steering_too_large("one more", inbox[:3]) is None


def test_decision_bounds() -> None:
    ok = ApprovalDecision(
        call_id="c",
        action=ApprovalAction.EDIT,
        arguments="x" * limits.MAX_EDITED_ARGUMENTS_BYTES,
        message="m" * limits.MAX_DECISION_MESSAGE_BYTES,
    )
    assert policy.decision_too_large(ok) is None
    long_message = ok.model_copy(update={"message": "m" * (limits.MAX_DECISION_MESSAGE_BYTES + 1)})
    assert "the message is" in (policy.decision_too_large(long_message) or "")
    big_args = ok.model_copy(update={"arguments": "x" * (limits.MAX_EDITED_ARGUMENTS_BYTES + 1)})
    assert "the edited arguments is" in (policy.decision_too_large(big_args) or "")


def test_refused_result_tells_the_model_why_and_what_to_do() -> None:
    call = ToolCall(id="c", name="_write_file", arguments="{}", refused="too big")
    result = policy.refused_result(call)
    assert result.error_code == "too_large" and result.call_id == "c"
    assert result.content.startswith("too big; nothing was run.")
    assert "append=true" in result.content


def test_last_turn_index() -> None:
    user = Message(role=Role.USER, content="u")
    assistant = Message(role=Role.ASSISTANT, content="a")
    tool = Message(role=Role.TOOL, content="t", tool_call_id="c")
    assert policy.last_turn_index([]) == -1
    assert policy.last_turn_index([user]) == -1
    assert policy.last_turn_index([user, assistant, tool, assistant, tool]) == 3


# --- budgets -------------------------------------------------------------------------------


def usage(tokens: int, cost: float = 0.0) -> TokenUsage:
    return TokenUsage(input_tokens=tokens, output_tokens=0, cost_usd=cost)


def test_budget_of_takes_the_earlier_deadline() -> None:
    late = T0 + timedelta(hours=2)
    both = AgentInput(task="t", model="m", deadline=late, max_duration=timedelta(minutes=5))
    assert budgets.Budget.of(both, T0).deadline == T0 + timedelta(minutes=5)
    only = AgentInput(task="t", model="m", deadline=late)
    assert budgets.Budget.of(only, T0).deadline == late
    assert budgets.Budget.of(AgentInput(task="t", model="m"), T0) == budgets.Budget()


def test_spent_names_the_budget() -> None:
    budget = budgets.Budget(max_tokens=100, max_cost_usd=0.5, deadline=T0)
    assert "token budget spent: 100 of 100" in (budgets.spent(budget, usage(100), T0) or "")
    cost = budgets.spent(budget, usage(10, 0.5), T0 - timedelta(seconds=1))
    assert cost is not None and cost.startswith("cost budget spent")
    late = budgets.spent(budget, usage(10, 0.1), T0)
    assert late is not None and late.startswith("deadline passed")
    assert budgets.spent(budget, usage(99, 0.49), T0 - timedelta(seconds=1)) is None
    assert budgets.spent(budgets.Budget(), usage(10**9, 10**6), T0) is None


def test_child_share_splits_what_is_left() -> None:
    budget = budgets.Budget(max_tokens=1_500, max_cost_usd=1.0, deadline=T0 + timedelta(hours=1))
    share = budgets.child_share(budget, usage(300, 0.2), 4, T0)
    assert share == budgets.Budget(max_tokens=300, max_cost_usd=0.2, deadline=budget.deadline)
    # Four shares never add up to more than was left.
    assert share is not None and share.max_tokens is not None
    assert 4 * share.max_tokens <= 1_500 - 300


def test_child_share_is_none_once_spent_and_unlimited_stays_unlimited() -> None:
    budget = budgets.Budget(max_tokens=1_000)
    assert budgets.child_share(budget, usage(1_000), 2, T0) is None
    assert budgets.child_share(budgets.Budget(), usage(5), 3, T0) == budgets.Budget()
    # A tiny remainder still gives each child at least one token, never zero or less.
    assert budgets.child_share(budget, usage(999), 5, T0) == budgets.Budget(max_tokens=1)


def test_sub_task_input_carries_the_share() -> None:
    parent = AgentInput(
        task="t", model="m", sub_agents={"helper": SubAgentSpec(description="d")}, max_tokens=1_000
    )
    share = budgets.Budget(max_tokens=250, max_cost_usd=0.1, deadline=T0)
    child = policy.sub_task_input(parent, "p", "helper", "job", None, share)
    assert (child.max_tokens, child.max_cost_usd, child.deadline) == (250, 0.1, T0)
    assert child.parent is not None and child.parent.workflow_id == "p"
    unlimited = policy.sub_task_input(parent, "p", "helper", "job", None)
    assert (unlimited.max_tokens, unlimited.max_cost_usd, unlimited.deadline) == (None, None, None)
