"""Recognise shell commands that could wreck the machine, for the approval policy.

:func:`is_dangerous_command` is pure and deterministic (no I/O, the standard library
only), because the workflow calls it while deciding whether a ``_bash`` call waits for
a person's approval, and a workflow must replay the same decision forever.

It is a tripwire for honest mistakes, not a sandbox: a determined model can always
obfuscate a command (variables, ``base64 -d | sh``, ``find -delete``, a downloaded
script, ``python -c``). The boundary is the shell sandbox
(:mod:`activities.tools.sandbox`); this check is a convenience in front of it. What it
catches:

- ``rm`` recursive on the root, the home folder, the current or parent folder, ``*``,
  or a top-level system folder (``rm -rf /``, ``rm -rf ~``, ``rm -rf *``, ``rm -r /usr``);
- ``chmod``/``chown``/``chgrp -R`` on the same kind of target;
- formatting or overwriting disks: ``mkfs*``, ``mke2fs``, ``wipefs``,
  ``dd of=/dev/...``, ``> /dev/sda``;
- ``shutdown``, ``reboot``, ``halt``, ``poweroff``, ``init 0|6``,
  ``systemctl poweroff|reboot|halt``;
- fork bombs (``:(){ :|:& };:`` and the same shape under any name);
- running a downloaded script: ``curl ... | sh``, ``bash <(curl ...)``,
  ``sh -c "$(wget -O- ...)"``.

Commands are split on ``;``, ``&&``, ``||``, ``|``, ``&``, newlines, ``$(...)``,
backticks and subshells, quotes respected, so ``echo "rm -rf /"`` is harmless while
``sudo rm -rf /``, ``x=1 /bin/rm -rf /`` and ``bash -c 'rm -rf /'`` are not.
"""

from __future__ import annotations

import itertools
import re
import shlex

# Wrappers that run the command after them: the command is what counts.
_PREFIXES = frozenset(
    {"sudo", "doas", "env", "nohup", "time", "nice", "ionice", "exec", "command", "builtin",
     "xargs", "then", "do", "else", "elif", "if", "while", "until", "!", "{", "}"}
)  # fmt: skip
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish"})
_DOWNLOADERS = frozenset({"curl", "wget"})
_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff"})
_SYSTEM_DIRS = (
    "bin|boot|dev|etc|home|lib|lib32|lib64|opt|proc|root|run|sbin|srv|sys|usr|var|mnt|media"
)
_ROOTISH = re.compile(
    rf"""(
        /                          # the root
      | /({_SYSTEM_DIRS})          # a top-level system folder
      | ~[\w.-]*                   # a home folder
      | \$HOME | \$\{{HOME\}}      # the home folder, spelt as a variable
      | \*  | \.\*                 # everything here
      | \.\.?(/\.\.)*              # here, or above
    )""",
    re.VERBOSE,
)
# Devices that are fine to write to.
_HARMLESS_DEVICES = re.compile(r"/dev/(null|zero|stdout|stderr|tty|fd/\d+|shm/.*)")
_FORK_BOMB = re.compile(r"([A-Za-z_:][\w:]*)\(\)\{\1\|\1&\};?\1")
# A shell (or eval/source) fed by a download through $(...), `...` or <(...).
_SHELL_RUNS_DOWNLOAD = re.compile(
    r"(?:\b(?:ba|z|da|k)?sh|\beval|\bsource|(?:^|[;&|\s])\.)\s[^;&|\n]*?"
    r"(?:\$\(|`|<\()\s*(?:curl|wget)\b"
)
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*")
# Wrapper flags that take a value: sudo -u user, nice -n 10, env -C dir.
_FLAGS_WITH_VALUE = frozenset({"-u", "-g", "-n", "-C"})
_MAX_DEPTH = 3

Tokens = list[str]


def is_dangerous_command(command: str) -> str | None:
    """Why a shell command needs a person's approval, or ``None`` when it looks safe.

    Args:
        command: The command line as ``_bash`` would run it with ``bash -c``.

    Returns:
        A short reason, e.g. ``"rm -r on '/'"``; ``None`` when nothing matches.
    """
    return _check(command, depth=0)


def _check(command: str, *, depth: int) -> str | None:
    if _FORK_BOMB.search(re.sub(r"\s+", "", command)):
        return "fork bomb"
    if _SHELL_RUNS_DOWNLOAD.search(command):
        return "runs a downloaded script"
    if depth > _MAX_DEPTH:
        return None
    segments, separators = _split(command)
    for index, tokens in enumerate(segments):
        reason = _check_segment(tokens, depth)
        if reason is None and separators[index] == "|" and index + 1 < len(segments):
            reason = _pipe_to_shell(tokens, segments[index + 1])
        if reason is not None:
            return reason
    return None


def _split(command: str) -> tuple[list[Tokens], list[str]]:
    """Simple commands and the separator that follows each (``""`` at the end)."""
    # Backticks and newlines start new commands, as far as this check cares.
    text = command.replace("`", " ; ").replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: bash would refuse it too; judge the words
        tokens = text.split()
    segments: list[Tokens] = [[]]
    separators: list[str] = []
    for token in tokens:
        if _is_separator(token):
            separators.append(token)
            segments.append([])
        else:
            segments[-1].append(token)
    separators.append("")
    return segments, separators


def _is_separator(token: str) -> bool:
    if token in ("<(", ">("):
        return True  # process substitution starts a command
    return bool(token) and all(c in ";&|()" for c in token)


def _program(tokens: Tokens) -> tuple[str, Tokens]:
    """The program a simple command runs (wrappers and assignments skipped), its args."""
    rest = list(tokens)
    wrapped = False
    while rest:
        word = rest.pop(0)
        if word in _PREFIXES or _ASSIGNMENT.fullmatch(word):
            wrapped = wrapped or word in _PREFIXES
        elif wrapped and word.startswith("-"):
            if word in _FLAGS_WITH_VALUE and rest:
                rest.pop(0)
        else:
            # `\rm` skips aliases and `/bin/rm` is still rm.
            return word.lstrip("\\").rsplit("/", 1)[-1], rest
    return "", []


def _check_segment(tokens: Tokens, depth: int) -> str | None:
    for word in tokens:  # $(...) inside a quoted word still runs
        if "$(" in word:
            reason = _check(word.split("$(", 1)[1], depth=depth + 1)
            if reason is not None:
                return reason
    reason = _redirect_to_device(tokens)
    if reason is not None:
        return reason
    program, args = _program(tokens)
    for check in (_rm, _recursive_permissions, _disk, _power, _nested_shell):
        reason = check(program, args, depth)
        if reason is not None:
            return reason
    return None


def _flags(args: Tokens) -> tuple[set[str], Tokens]:
    """Short and long flags (``-rf`` is ``r`` and ``f``) and the operands."""
    flags: set[str] = set()
    operands: Tokens = []
    only_operands = False
    for arg in args:
        if only_operands or not arg.startswith("-") or arg == "-":
            operands.append(arg)
        elif arg == "--":
            only_operands = True
        elif arg.startswith("--"):
            flags.add(arg)
        else:
            flags.update(arg[1:])
    return flags, operands


def _rootish(target: str) -> bool:
    trimmed = target
    while len(trimmed) > 1 and trimmed.endswith(("/", "/*", "/.")):
        trimmed = trimmed[:-2] if trimmed.endswith(("/*", "/.")) else trimmed[:-1]
        trimmed = trimmed or "/"
    return _ROOTISH.fullmatch(trimmed) is not None


def _rm(program: str, args: Tokens, depth: int) -> str | None:
    if program != "rm":
        return None
    flags, operands = _flags(args)
    if not flags & {"r", "R", "--recursive"}:
        return None
    target = next((t for t in operands if _rootish(t)), None)
    return None if target is None else f"rm -r on {target!r}"


def _recursive_permissions(program: str, args: Tokens, depth: int) -> str | None:
    if program not in ("chmod", "chown", "chgrp"):
        return None
    flags, operands = _flags(args)
    if not flags & {"R", "--recursive"}:
        return None
    target = next((t for t in operands[1:] if _rootish(t)), None)
    return None if target is None else f"{program} -R on {target!r}"


def _disk(program: str, args: Tokens, depth: int) -> str | None:
    if program.startswith("mkfs") or program in ("mke2fs", "wipefs"):
        return f"{program} formats a disk"
    if program == "dd":
        for arg in args:
            device = arg.removeprefix("of=")
            if arg.startswith("of=/dev/") and not _HARMLESS_DEVICES.fullmatch(device):
                return f"dd writes to the device {device}"
    return None


def _power(program: str, args: Tokens, depth: int) -> str | None:
    if program in _POWER:
        return f"{program} stops the machine"
    if program == "init" and args[:1] in (["0"], ["6"]):
        return f"init {args[0]} stops the machine"
    if program == "systemctl" and set(args) & {"poweroff", "reboot", "halt", "kexec"}:
        return "systemctl stops the machine"
    return None


def _nested_shell(program: str, args: Tokens, depth: int) -> str | None:
    """``bash -c '...'`` and ``eval '...'`` run their argument: check it too."""
    if program == "eval":
        return _check(" ".join(args), depth=depth + 1)
    if program in _SHELLS and "-c" in args[:-1]:
        return _check(args[args.index("-c") + 1], depth=depth + 1)
    return None


def _redirect_to_device(tokens: Tokens) -> str | None:
    for token, target in itertools.pairwise(tokens):
        if token.endswith((">", ">|")) and set(token) <= set("&>|") and target.startswith("/dev/"):
            if not _HARMLESS_DEVICES.fullmatch(target):
                return f"writes to the device {target}"
    return None


def _pipe_to_shell(left: Tokens, right: Tokens) -> str | None:
    downloader, _ = _program(left)
    shell, _ = _program(right)
    if downloader in _DOWNLOADERS and shell in _SHELLS:
        return f"pipes a download from {downloader} into {shell}"
    return None
