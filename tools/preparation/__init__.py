"""Data preparation behind vsr-prepare and the stage tools: the planner (what to do) and the executor (doing it)."""
