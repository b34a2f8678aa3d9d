#!/usr/bin/env bash
# Run, resume or grow one slice of a sweep profile and keep its committed form in RESULTS:
# sweep.json, runs.jsonl (every finished run, `fgrpo report --compact`) and report/ (not a
# one-slice effects.json: a profile's effects come from `fgrpo report FIRST --with OTHERS`). The run
# directories stay in SCRATCH (default runs/slices/<RESULTS' name>, outside git), so the same
# command resumes a killed point; the points RESULTS' runs.jsonl already holds are not run again,
# even on a machine where SCRATCH is gone (docs/experiments.md, "Committed sweeps").
#
#   benchmarks/commit_slice.sh PROFILE SLICE RESULTS [SCRATCH]
#   e.g. benchmarks/commit_slice.sh benchmarks/laptop.toml alpha benchmarks/results/laptop/alpha
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 PROFILE SLICE RESULTS [SCRATCH]" >&2; exit 2; }
profile=$1 slice=$2 results=$3 scratch=${4:-runs/slices/$(basename "$3")}
fgrpo=$(dirname "$0")/../.venv/bin/fgrpo

mkdir -p "$scratch"
if [ -f "$results/runs.jsonl" ]; then  # what is committed counts as done
    cp "$results/runs.jsonl" "$scratch/"
    [ -f "$scratch/sweep.json" ] || cp "$results/sweep.json" "$scratch/"
fi
status=0
"$fgrpo" sweep --config "$profile" --slice "$slice" --out "$scratch" || status=$?
if [ "$status" -ne 2 ]; then  # 2: refused before anything ran (a bad config): nothing to keep
    "$fgrpo" report "$scratch" --compact
    mkdir -p "$results"
    rm -rf "$results/report"
    cp -r "$scratch/sweep.json" "$scratch/runs.jsonl" "$scratch/report" "$results/"
    echo "committed form: $results"
fi
exit "$status"
