"""End-to-end tests: real runs through Flower and Ray, subprocesses, deployments and sweeps."""
