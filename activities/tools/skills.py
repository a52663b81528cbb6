"""Skills: instructions the agent loads when it needs them.

A skill is a folder with a ``SKILL.md``: front matter with a name and a one-line
description, then the instructions::

    skills/
      release-notes/
        SKILL.md          ---
                          name: release-notes
                          description: Write release notes from the git log.
                          ---
                          1. Run `git log --oneline <last-tag>..HEAD` ...
        template.md       (files the instructions refer to)

The system prompt lists every skill's name and description (:meth:`Skills.list_skills`);
the model calls ``_activate_skill(name)`` to read the instructions when a task calls
for them, so a long skill costs context only when used.

The front matter is read by a deliberately small parser, not YAML: one ``key: value``
per line, optional quotes around the value, blank lines and ``#`` comments ignored. A
skill without front matter, with a line that is not ``key: value``, without a name or
description, or whose name an earlier skill has taken (folders are read in name
order), is skipped; the reason is in :meth:`Skills.scan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from duragent.activities.errors import ToolError
from duragent.activities.tools.registry import ToolContext, tool
from duragent.activities.tools.workspace import Workspace, join_path, normalize_path

SKILL_FILE = "SKILL.md"
DEFAULT_FOLDER = "skills"


@dataclass(frozen=True)
class SkillInfo:
    """What the system prompt says about a skill."""

    name: str
    description: str


@dataclass(frozen=True)
class Skill:
    """A loaded skill: its front matter, its instructions and where its files are."""

    name: str
    description: str
    body: str
    folder: str
    """Workspace path of the skill's folder."""


@dataclass(frozen=True)
class SkippedSkill:
    """A skill folder that could not be loaded, and why."""

    folder: str
    reason: str


@dataclass(frozen=True)
class SkillScan:
    """The result of reading the skills folder."""

    skills: list[Skill] = field(default_factory=list)
    skipped: list[SkippedSkill] = field(default_factory=list)


class Skills:
    """The skills in a folder of a workspace.

    The folder is read on every call, so a skill the agent (or a person) adds or edits
    is seen at once. For skills outside the agent's workspace, give them a workspace of
    their own: ``Skills(LocalWorkspace("/etc/duragent/skills"), folder=".")``.

    Args:
        workspace: Where the skills are.
        folder: The skills folder inside it.
    """

    def __init__(self, workspace: Workspace, folder: str = DEFAULT_FOLDER) -> None:
        self._workspace = workspace
        self._folder = normalize_path(folder)

    async def scan(self) -> SkillScan:
        """Read every skill folder: the skills, and the folders skipped with a reason."""
        if not await self._workspace.exists(self._folder):
            return SkillScan()
        scan = SkillScan()
        names: set[str] = set()
        for entry in await self._workspace.list_dir(self._folder):
            if not entry.endswith("/") or entry.startswith("."):
                continue
            folder = join_path(self._folder, entry.rstrip("/"))
            try:
                skill = await self._load(folder)
            except ValueError as err:
                scan.skipped.append(SkippedSkill(folder=folder, reason=str(err)))
                continue
            if skill.name in names:
                reason = f"the name {skill.name!r} is taken by another skill"
                scan.skipped.append(SkippedSkill(folder=folder, reason=reason))
                continue
            names.add(skill.name)
            scan.skills.append(skill)
        return scan

    async def list_skills(self) -> list[SkillInfo]:
        """Name and description of every loadable skill, sorted by folder."""
        return [SkillInfo(s.name, s.description) for s in (await self.scan()).skills]

    async def get(self, name: str) -> Skill:
        """The skill of that name.

        Raises:
            ToolError: ``not_found``, listing the names there are.
        """
        skills = (await self.scan()).skills
        for skill in skills:
            if skill.name == name:
                return skill
        available = ", ".join(s.name for s in skills) or "(none)"
        raise ToolError(f"no skill named {name!r}; available skills: {available}", code="not_found")

    async def _load(self, folder: str) -> Skill:
        path = join_path(folder, SKILL_FILE)
        if not await self._workspace.exists(path):
            raise ValueError(f"no {SKILL_FILE}")
        try:
            text = await self._workspace.read_text(path)
        except ToolError as err:
            raise ValueError(str(err)) from err
        meta, body = parse_front_matter(text)
        name, description = meta.get("name", ""), meta.get("description", "")
        if not name or not description:
            raise ValueError("the front matter needs a name and a description")
        return Skill(name=name, description=description, body=body.strip(), folder=folder)


def parse_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split ``---``-delimited ``key: value`` front matter from the body.

    Raises:
        ValueError: No front matter, no closing ``---``, or a line that is not
            ``key: value``.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("no front matter: SKILL.md must start with a '---' line")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        raise ValueError("the front matter has no closing '---' line") from None
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            raise ValueError(f"line {number} of the front matter is not 'key: value': {line!r}")
        meta[key.strip()] = _unquote(value.strip())
    return meta, "\n".join(lines[end + 1 :])


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


class ActivateSkillArgs(BaseModel):
    """Arguments of ``_activate_skill``."""

    name: str = Field(min_length=1, description="Name of the skill, as listed.")


@tool(name="_activate_skill")
async def activate_skill(args: ActivateSkillArgs, ctx: ToolContext) -> str:
    """Load the instructions of a skill listed in the system prompt, before doing its task."""
    skills = ctx.skills if ctx.skills is not None else Skills(ctx.workspace)
    skill = await skills.get(args.name)
    return f"# Skill: {skill.name}\n(files of this skill are in {skill.folder}/)\n\n{skill.body}"
