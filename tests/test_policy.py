"""Pure decision functions and error mapping: no Temporal, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx2
import openai
import pytest

from duragent.activities.errors import LLMErrorType, llm_error_to_application_error, retry_after
from duragent.activities.models import Message, Role, ToolCall, ToolResult, ToolStatus
from duragent.workflows import policy


def call(name: str, arguments: str, id: str = "c1") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


def test_finish_wins_over_a_question_and_the_question_is_answered() -> None:
    calls = [
        call("_ask_user", '{"question": "really?"}', "q"),
        call("_task_finish", '{"message": "done", "files": ["a.md"]}', "f"),
    ]
    control = policy.interpret_control_calls(calls, [])
    directive = policy.decide(calls, control)
    assert directive.kind is policy.DirectiveKind.FINISH
    assert (directive.answer, directive.files) == ("done", ("a.md",))
    assert control.results["q"].status is ToolStatus.ERROR  # every call gets an answer


def test_only_the_first_question_is_asked() -> None:
    calls = [
        call("_ask_user", '{"question": "one"}', "1"),
        call("_ask_user", '{"question": "two"}', "2"),
    ]
    control = policy.interpret_control_calls(calls, [])
    assert control.question is not None and control.question.question == "one"
    assert control.results["2"].error_code == "busy"
    assert policy.decide(calls, control).kind is policy.DirectiveKind.ASK


def test_invalid_finish_goes_back_to_the_model() -> None:
    calls = [call("_task_finish", '{"msg": "x"}')]
    control = policy.interpret_control_calls(calls, [])
    assert control.finish is None
    assert control.results["c1"].error_code == "invalid_arguments"
    assert "message: Field required" in control.results["c1"].content
    assert policy.decide(calls, control).kind is policy.DirectiveKind.CONTINUE


def test_no_calls_nudges() -> None:
    assert (
        policy.decide([], policy.interpret_control_calls([], [])).kind is policy.DirectiveKind.NUDGE
    )


def test_error_results_are_marked_for_the_model() -> None:
    result = ToolResult(
        call_id="c", name="t", status=ToolStatus.ERROR, content="bad", error_code="x"
    )
    assert policy.tool_message(result).content == "ERROR (x): bad"


def test_system_prompt_is_stable_across_cycles() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = policy.system_prompt(None, start, ["_read_file"])
    assert first == policy.system_prompt(None, start, ["_read_file"])
    assert "2026-01-02T03:04:05" in first and "_read_file" in first
    assert policy.system_prompt("You are a poet.", start, []).startswith("You are a poet.")


def test_cycles_exhausted() -> None:
    assert not policy.cycles_exhausted(2, 3)
    assert policy.cycles_exhausted(3, 3)


def status_error(
    status: int, *, headers: dict[str, str] | None = None, code: str | None = None
) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"message": f"status {status}", "code": code}
    cls = openai.APIStatusError
    return cls(f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (408, LLMErrorType.SERVER, True),
        (409, LLMErrorType.SERVER, True),
        (429, LLMErrorType.RATE_LIMITED, True),
        (500, LLMErrorType.SERVER, True),
        (503, LLMErrorType.SERVER, True),
        (400, LLMErrorType.BAD_REQUEST, False),
        (401, LLMErrorType.AUTHENTICATION, False),
        (403, LLMErrorType.AUTHENTICATION, False),
        (404, LLMErrorType.BAD_REQUEST, False),
        (422, LLMErrorType.BAD_REQUEST, False),
    ],
)
def test_status_codes_map_to_retry_posture(
    status: int, kind: LLMErrorType, retryable: bool
) -> None:
    err = llm_error_to_application_error(status_error(status))
    assert err.type == kind.value
    assert err.non_retryable is not retryable
    assert f"({status})" in err.message


def test_context_length_is_its_own_kind() -> None:
    err = llm_error_to_application_error(status_error(400, code="context_length_exceeded"))
    assert err.type == LLMErrorType.CONTEXT_LENGTH.value and err.non_retryable


def test_connection_errors_retry() -> None:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    err = llm_error_to_application_error(openai.APIConnectionError(request=request))
    assert err.type == LLMErrorType.CONNECTION.value and not err.non_retryable


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "2"}) == timedelta(seconds=2)
    assert retry_after({"retry-after-ms": "1500"}) == timedelta(seconds=1.5)
    assert retry_after({"retry-after": "3600"}) == timedelta(minutes=5)  # capped
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    future = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    delay = retry_after({"retry-after": future})
    assert delay is not None and timedelta(seconds=25) < delay <= timedelta(seconds=30)


def test_429_carries_next_retry_delay() -> None:
    err = llm_error_to_application_error(status_error(429, headers={"retry-after": "7"}))
    assert err.next_retry_delay == timedelta(seconds=7)


def todo_call(*items: tuple[str, str], id: str = "t") -> ToolCall:
    todos = [{"id": i, "content": f"step {i}", "status": s} for i, s in items]
    return call("_todo_write", json.dumps({"todos": todos}), id)


def test_finish_is_refused_while_todos_are_open() -> None:
    calls = [
        todo_call(("1", "completed"), ("2", "in_progress")),
        call("_task_finish", '{"message": "x"}', "f"),
    ]
    control = policy.interpret_control_calls(calls, [])
    assert control.finish is None
    assert control.results["f"].error_code == "todo_incomplete"
    assert "2: step 2 (in_progress)" in control.results["f"].content
    assert control.todos is not None and len(control.todos) == 2


def test_completing_the_last_todo_and_finishing_in_one_turn() -> None:
    earlier = policy.interpret_control_calls([todo_call(("1", "in_progress"))], []).todos
    assert earlier is not None
    calls = [todo_call(("1", "completed")), call("_task_finish", '{"message": "x"}', "f")]
    control = policy.interpret_control_calls(calls, earlier)
    assert control.finish is not None and control.results["f"].status is ToolStatus.SUCCESS


def test_invalid_todo_lists_go_back_to_the_model() -> None:
    control = policy.interpret_control_calls(
        [todo_call(("1", "in_progress"), ("2", "in_progress"))], []
    )
    assert control.todos is None
    assert control.results["t"].error_code == "invalid_arguments"


def test_the_summary_takes_the_middle_by_reference_when_stored() -> None:
    head, middle = [call_message(0)], [call_message(1), call_message(2)]
    by_ref = policy.summary_request("m", head, middle, "ref", stored_count=3)
    assert (by_ref.transcript_ref, by_ref.start, by_ref.end, by_ref.messages) == ("ref", 1, 3, [])
    inline = policy.summary_request("m", head, middle, "ref", stored_count=2)
    assert inline.transcript_ref is None and inline.messages == middle
    assert policy.summary_request("m", head, middle, None, 0).messages == middle


def call_message(i: int) -> Message:
    return Message(role=Role.USER, content=f"m{i}")


def test_a_transcript_page_is_cut_short_past_its_byte_bound() -> None:
    big = [Message(role=Role.USER, content="x" * 400) for _ in range(5)]
    assert len(policy.page_within(big, 1_000)) == 2
    assert len(policy.page_within(big, 10_000)) == 5
    # One message over the bound still comes back: a page is never empty.
    assert len(policy.page_within(big, 10)) == 1
