"""ruff over the whole tree and mypy over the pure core (pyproject.toml says which), as `make test` runs them."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff_finds_nothing():
    done = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_pure_core():
    done = subprocess.run([str(BIN / "mypy"), "--no-incremental"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_imported_library_is_declared():
    declared = {d.split("==")[0].split(">")[0].split(";")[0].strip().lower().replace("-", "_")
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    names = {"yaml": "pyyaml", "cpuinfo": "py_cpuinfo", "docker": "docker"}
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in (ROOT / "orchestrator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            for module in modules:
                top = module.split(".")[0]
                if top not in stdlib and top not in ("orchestrator", "__future__"):
                    found.add(names.get(top, top).lower())
    assert found - declared == set()


def test_the_shell_scripts_pass_shellcheck():
    """.ci/run (what CI runs) and every *.sh: a syntax error there fails CI before any test runs."""
    listed = subprocess.run(["git", "ls-files", "*.sh", ".ci/run"], cwd=ROOT, capture_output=True, text=True)
    scripts = listed.stdout.split() if listed.returncode == 0 else [".ci/run"]
    shellcheck = BIN / "shellcheck" if (BIN / "shellcheck").exists() else "shellcheck"
    done = subprocess.run([str(shellcheck), "--severity=warning", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
