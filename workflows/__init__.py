"""Deterministic workflow code: the agent workflow, its state and its decisions."""
