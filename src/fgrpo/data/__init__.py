"""Data layer: partitions of the task pool, a deployed node's own source, and each client's probe rows."""
