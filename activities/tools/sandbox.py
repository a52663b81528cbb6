"""Where shell commands run: a bubblewrap sandbox, or (``none``) the worker's own view.

A shell command is written by a model, so it is treated as hostile. With
``bwrap`` (the default wherever the binary exists) every ``_bash`` and background
command runs inside `bubblewrap <https://github.com/containers/bubblewrap>`_:

- **its own PID namespace and /proc**: the worker and its other commands are not
  there, so ``cat /proc/$PPID/environ`` or ``kill $PPID`` reach only the sandbox's
  own init process;
- **an allowlist environment** (``--clearenv``): ``PATH``, ``HOME`` (the workspace),
  ``LANG``, ``TERM`` and the variables a deployment declares, nothing else;
- **a minimal file system**: the system directories read-only (``/usr``, ``/bin``,
  ``/lib*``, ``/etc`` minus its password and key files), a private ``/tmp``, and the
  workspace at ``/workspace``, the only host tree a command can write. For an agent
  with a folder of its own (or a named shared one) that is the folder alone: the
  other agents' folders are not mounted. The worker's
  home, the transcript store and every other host directory are not mounted, so they
  do not exist; the sandbox's own root is read-only, so a write above the workspace
  fails;
- **no capabilities** and, on request, **no network** (``--unshare-net``); the network
  is allowed by default because package installs and downloads are common work;
- **death with its worker** (``--die-with-parent``): a SIGKILLed worker takes its
  commands with it, so a retried call never races its first attempt.

``none`` runs ``/bin/bash`` directly with the same allowlist environment and a
parent-death signal (SIGKILL when the worker dies). It is no boundary: the command
sees the worker's files and processes. The dangerous-command check
(:mod:`activities.tools.dangerous`) is a convenience in either mode, not a defence.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

BASH = "/bin/bash"

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
"""``PATH`` inside the sandbox: only system directories are there to search."""
WORKSPACE_MOUNT = Path("/workspace")
"""Where the workspace appears inside the sandbox (and ``HOME``): a fixed path, so its
parents are part of the read-only root, whatever the host path is."""
DEFAULT_LANG = "C.UTF-8"
DEFAULT_TERM = "dumb"

# System trees a command needs (programs, libraries, configuration); each is bound
# read-only where it is a directory, recreated where it is a symlink (merged /usr).
_SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Readable by root in /etc, and secret: password hashes, host keys, TLS private keys.
_MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_MASKED_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d")

_PR_SET_PDEATHSIG = 1


class SandboxMode(StrEnum):
    """``DURAGENT_SHELL_SANDBOX``: how shell commands are confined."""

    BWRAP = "bwrap"
    """Inside bubblewrap (see the module docstring)."""
    NONE = "none"
    """Directly, with the worker's view of files and processes (no boundary)."""


@dataclass(frozen=True)
class ShellSandbox:
    """How one worker runs shell commands; built by the worker from its settings.

    The default is ``none``: the worker's entry point chooses ``bwrap`` where it can
    (see ``worker.plugin.shell_sandbox``).
    """

    mode: SandboxMode = SandboxMode.NONE
    bwrap: str = "bwrap"
    """The bubblewrap binary (a path, found by the entry point)."""
    network: bool = True
    """Whether commands may use the network; ``False`` adds ``--unshare-net``."""
    path: str = SANDBOX_PATH
    """``PATH`` of commands run without the sandbox (the worker's own)."""
    lang: str = DEFAULT_LANG
    term: str = DEFAULT_TERM
    passthrough: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Variables the deployment declared (``DURAGENT_SHELL_ENV``), with their values."""

    def environment(self, root: Path) -> dict[str, str]:
        """The whole environment of a command: the allowlist, nothing inherited."""
        return {
            **self.passthrough,
            "PATH": SANDBOX_PATH if self.mode is SandboxMode.BWRAP else self.path,
            "HOME": str(WORKSPACE_MOUNT if self.mode is SandboxMode.BWRAP else root),
            "LANG": self.lang,
            "TERM": self.term,
        }

    def argv(self, command: str, *, root: Path, cwd: Path) -> list[str]:
        """The program and arguments that run ``command`` with ``/bin/bash -c``.

        Args:
            command: The command line.
            root: The workspace root: bound read-write (at ``/workspace`` in the
                sandbox), the only writable tree besides a private ``/tmp``.
            cwd: The working folder, inside ``root``.
        """
        shell = [BASH, "-c", command]
        if self.mode is SandboxMode.NONE:
            return shell
        inside = WORKSPACE_MOUNT / cwd.resolve().relative_to(root.resolve())
        return [*self._bwrap_options(root.resolve(), inside, self.environment(root)), *shell]

    def preexec(self) -> Callable[[], None] | None:
        """What the child runs before ``exec``: the parent-death signal, without bwrap.

        bubblewrap sets it itself (``--die-with-parent``); a plain shell gets SIGKILL
        from the kernel when the worker dies, so its command stops mid-way instead of
        finishing seconds after the worker's calls were declared failed.
        """
        if self.mode is SandboxMode.BWRAP:
            return None
        return _die_with_parent(os.getpid())

    def _bwrap_options(self, root: Path, cwd: Path, env: Mapping[str, str]) -> list[str]:
        """The options of bwrap; ``cwd`` is the working folder as the sandbox sees it."""
        options = [self.bwrap, "--unshare-all"]
        if self.network:
            options.append("--share-net")
        options += ["--die-with-parent", "--cap-drop", "ALL"]
        for tree in _SYSTEM_TREES:
            if os.path.islink(tree):
                options += ["--symlink", os.readlink(tree), tree]
            elif os.path.isdir(tree):
                options += ["--ro-bind", tree, tree]
        options += [
            arg for f in _MASKED_FILES if os.path.lexists(f) for arg in ("--ro-bind", os.devnull, f)
        ]
        options += [arg for d in _MASKED_DIRS if os.path.isdir(d) for arg in ("--tmpfs", d)]
        options += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
        options += ["--bind", str(root), str(WORKSPACE_MOUNT), "--chdir", str(cwd)]
        # The sandbox's own root (where /workspace and the mount points live) read-only
        # too: a write above the workspace fails instead of landing somewhere.
        options += ["--remount-ro", "/", "--clearenv"]
        for name, value in env.items():
            options += ["--setenv", name, value]
        options.append("--")
        return options


def _die_with_parent(parent: int) -> Callable[[], None]:
    # Loaded before the fork: the child only calls a function already resolved.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the worker died before the signal was armed
            os._exit(1)

    return preexec
