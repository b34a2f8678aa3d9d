"""Benchmark analysis: what the scripts under benchmarks/ compute from results, kept in the
package so the tests exercise it (the scripts run the experiments and write the files)."""
