"""The conventions the tools keep: lint and format (ruff), one-way layers and no import circles
(import-linter), docs that build with no broken link (mkdocs --strict), a configuration reference
generated from the fields, small modules, and committed sweeps that the report rebuilds."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fgrpo.core.config_reference import reference_markdown

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAPTOP = ROOT / "benchmarks" / "results" / "laptop"


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("lint-imports",)],
    ids=["ruff-check", "ruff-format", "import-linter"],
)
def test_the_tree_is_clean(command):
    done = run(str(BIN / command[0]), *command[1:])
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_layer_violation_and_a_circle_are_caught(tmp_path):
    """The contracts can fail: a core module that imports the server breaks both."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "fgrpo", src / "fgrpo")
    with (src / "fgrpo" / "core" / "errors.py").open("a") as f:
        f.write("\nimport fgrpo.server.federation  # noqa: E402,F401\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        [str(BIN / "lint-imports")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": str(BIN)},
        timeout=300,
    )
    assert done.returncode != 0
    assert "One-way layers BROKEN" in done.stdout and "No import circles BROKEN" in done.stdout


def test_the_docs_build_strictly(tmp_path):
    done = run(str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_configuration_reference_is_generated_from_the_fields():
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference_markdown(), (
        "docs/configuration.md is stale: python -m fgrpo.core.config_reference > "
        "docs/configuration.md"
    )
    assert "| `strategy.tau` | `3.0` | ≥ 1e-09 |" in committed


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("src", "benchmarks", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long


def test_function_level_imports_say_why():
    """A function-level import delays a slow one, and a comment above its block says so."""
    silent = []
    for path in (ROOT / "src" / "fgrpo").rglob("*.py"):
        lines = path.read_text().splitlines()
        imports = sorted(
            {
                (n.lineno, n.end_lineno)
                for fn in ast.walk(ast.parse("\n".join(lines)))
                if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
                for n in ast.walk(fn)
                if isinstance(n, ast.Import | ast.ImportFrom)
            }
        )
        ends = {end for _, end in imports}
        for start, _ in imports:
            above = start - 1
            while above > 0 and not lines[above - 1].strip():
                above -= 1  # a blank line between imports does not end their block
            first_of_block = above not in ends
            if first_of_block and not lines[start - 2].strip().startswith("# deferred"):
                silent.append(f"{path.relative_to(ROOT)}:{start}")
    assert not silent, silent


@pytest.mark.parametrize(
    "slice_name", sorted(p.parent.name for p in LAPTOP.glob("*/runs.jsonl")) or ["(none committed)"]
)
def test_the_committed_laptop_reports_rebuild_from_their_compact_runs(tmp_path, slice_name):
    """A committed sweep keeps runs.jsonl instead of run directories; `fgrpo report` rebuilds
    its report's tables exactly from it."""
    copy = tmp_path / slice_name
    shutil.copytree(LAPTOP / slice_name, copy)
    for report in copy.glob("report*"):
        shutil.rmtree(report)
    assert not [p for p in copy.iterdir() if p.is_dir()]  # no run directories: runs.jsonl only
    done = run(str(BIN / "fgrpo"), "report", str(copy))
    assert done.returncode == 0, done.stderr
    committed = (LAPTOP / slice_name / "report" / "report.md").read_text().splitlines()
    rebuilt = (copy / "report" / "report.md").read_text().splitlines()
    assert [line for line in rebuilt if line.startswith("|")] == [
        line for line in committed if line.startswith("|")
    ]
    assert sum(line.startswith("|") for line in rebuilt) > 20
