"""Runtime layer: the simulation runner, run directory and checkpoints, pre-flight, sweeps and reports."""
