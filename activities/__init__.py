"""Side effects: LLM calls, tools, and the contracts that cross the activity boundary."""
