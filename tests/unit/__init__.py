"""Unit tests: one module or rule at a time, on the code path production runs (seconds each)."""
