"""Processes: the worker, the CLI, settings, the dev server and the scripted LLM."""
