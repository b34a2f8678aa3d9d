"""Experiment runner (simulation) and reports."""
