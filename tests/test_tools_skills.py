"""Skills: folders with a SKILL.md, listed for the prompt, loaded by ``_activate_skill``."""

from __future__ import annotations

import json

import pytest
from temporalio.testing import ActivityEnvironment

from duragent.activities.models import ToolCall, ToolRequest, ToolResult, ToolStatus
from duragent.activities.tools import (
    LocalWorkspace,
    MemoryWorkspace,
    SkillInfo,
    Skills,
    ToolRegistry,
    default_tools,
)
from duragent.activities.tools.activity import ToolActivities
from duragent.activities.tools.skills import parse_front_matter

RELEASE = """---
name: release-notes
description: "Write release notes from the git log."
---
1. Run git log.
2. Group the changes.
"""


@pytest.fixture
def workspace() -> MemoryWorkspace:
    return MemoryWorkspace(
        {
            "skills/release-notes/SKILL.md": RELEASE,
            "skills/release-notes/template.md": "# Release",
            "skills/review/SKILL.md": (
                "---\n# a comment\nname: review\n\ndescription: Review a diff.\n---\nBe kind."
            ),
            "skills/no-front-matter/SKILL.md": "just text",
            "skills/unclosed/SKILL.md": "---\nname: x\ndescription: y\n",
            "skills/not-key-value/SKILL.md": "---\nname: x\njust words\n---\nbody",
            "skills/no-description/SKILL.md": "---\nname: lonely\n---\nbody",
            "skills/z-duplicate/SKILL.md": "---\nname: review\ndescription: Again.\n---\n",
            "skills/empty-folder/readme.txt": "no SKILL.md here",
            "skills/stray-file.md": "not a folder",
        }
    )


async def test_listing_skips_malformed_skills_with_a_reason(workspace: MemoryWorkspace) -> None:
    skills = Skills(workspace)
    assert await skills.list_skills() == [
        SkillInfo("release-notes", "Write release notes from the git log."),
        SkillInfo("review", "Review a diff."),
    ]
    reasons = {s.folder: s.reason for s in (await skills.scan()).skipped}
    assert reasons == {
        "skills/z-duplicate": "the name 'review' is taken by another skill",
        "skills/empty-folder": "no SKILL.md",
        "skills/no-description": "the front matter needs a name and a description",
        "skills/no-front-matter": "no front matter: SKILL.md must start with a '---' line",
        "skills/not-key-value": "line 3 of the front matter is not 'key: value': 'just words'",
        "skills/unclosed": "the front matter has no closing '---' line",
    }


async def test_no_skills_folder_means_no_skills() -> None:
    assert await Skills(MemoryWorkspace()).list_skills() == []


async def test_skills_outside_the_agent_workspace(tmp_path: pytest.TempPathFactory) -> None:
    root = LocalWorkspace(str(tmp_path))
    await root.write_text("deploy/SKILL.md", "---\nname: deploy\ndescription: Ship it.\n---\nGo.")
    assert await Skills(root, folder=".").list_skills() == [SkillInfo("deploy", "Ship it.")]


async def activate(tools: ToolActivities, name: str) -> ToolResult:
    call = ToolCall(id="c", name="_activate_skill", arguments=json.dumps({"name": name}))
    return await ActivityEnvironment().run(
        tools.run_tool, ToolRequest(call=call, idempotency_key="wf:c")
    )


async def test_activation_returns_the_body(workspace: MemoryWorkspace) -> None:
    tools = ToolActivities(ToolRegistry(default_tools()), workspace)
    result = await activate(tools, "release-notes")
    assert result.status is ToolStatus.SUCCESS
    assert result.content == (
        "# Skill: release-notes\n(files of this skill are in skills/release-notes/)\n\n"
        "1. Run git log.\n2. Group the changes."
    )


async def test_an_unknown_skill_lists_the_available_ones(workspace: MemoryWorkspace) -> None:
    tools = ToolActivities(ToolRegistry(default_tools()), workspace)
    result = await activate(tools, "deploy")
    assert (result.status, result.error_code) == (ToolStatus.ERROR, "not_found")
    assert result.content == "no skill named 'deploy'; available skills: release-notes, review"


async def test_a_configured_skills_folder_is_used(workspace: MemoryWorkspace) -> None:
    elsewhere = MemoryWorkspace({"library/ops/SKILL.md": "---\nname: ops\ndescription: O.\n---\nX"})
    tools = ToolActivities(
        ToolRegistry(default_tools()), workspace, skills=Skills(elsewhere, folder="library")
    )
    assert (await activate(tools, "ops")).content.endswith("X")
    assert (await activate(tools, "review")).error_code == "not_found"


@pytest.mark.parametrize(
    ("text", "meta", "body"),
    [
        ("---\na: 1\nb: 'two: 2'\n---\nbody\n", {"a": "1", "b": "two: 2"}, "body"),
        ("\ufeff---\nname: x\n---\n", {"name": "x"}, ""),
        ("---\nurl: http://x:8080/y\n---", {"url": "http://x:8080/y"}, ""),
    ],
)
def test_front_matter(text: str, meta: dict[str, str], body: str) -> None:
    parsed, rest = parse_front_matter(text)
    assert parsed == meta and rest.strip() == body
