"""duragent: durable LLM agents as Temporal workflows.

The implementation lives in ``duragent.workflows`` (deterministic workflow code),
``duragent.activities`` (every side effect) and ``duragent.worker`` (processes, CLI).
"""

from duragent._version import __version__

__all__ = ["__version__"]
