"""ServerApp, aggregation strategies, the round loop, metrics log and checkpoints."""
