"""The layout holds: imports go one way (`lint-imports`), no cycle, small modules, one
definition of each public name."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 400
# Entry points and loggers: the same name in many modules, each its module's own.
EVERY_MODULE_MAY_HAVE = frozenset({"log", "main", "run"})


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_imports_go_one_way() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 kept, 0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("drainpipe/rollup/window.py", "drainpipe.service.pipeline"),  # a stage -> service
        ("drainpipe/rollup/window.py", "drainpipe.sink.worker"),  # a stage -> another
        ("drainpipe/store/sqlite.py", "drainpipe.query.api"),  # an adapter -> a stage
        ("drainpipe/model/summary.py", "drainpipe.codec"),  # vocabulary -> above it
    ],
)
def test_lint_imports_fails_when_an_import_goes_the_wrong_way(
    tmp_path: Path, module: str, imported: str
) -> None:
    for part in ("drainpipe", "bench"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("*.so"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a") as f:
        f.write(f"\nimport {imported}  # noqa\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert "BROKEN" in run.stdout and imported in run.stdout, run.stdout[-3000:]


def test_no_import_cycles() -> None:
    """import-linter's layers allow cycles within a layer; none is allowed anywhere."""
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("drainpipe", "bench", "tests")
    finally:
        sys.path.remove(str(ROOT))
    cycles = []
    for m in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(m):
            if m in graph.find_upstream_modules(imported):
                chain = graph.find_shortest_chain(imported, m)
                cycles.append(f"{m} -> {' -> '.join(chain or ())}")
    assert cycles == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("drainpipe", "bench", "tests")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_each_public_name_is_defined_in_one_module() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for p in sorted((ROOT / "drainpipe").rglob("*.py")):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                if not name.startswith("_") and name not in EVERY_MODULE_MAY_HAVE:
                    where[name].append(str(p.relative_to(ROOT)))
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}


def test_tests_mirror_the_package() -> None:
    """Every test folder is a stage (or `system`, `support`) of the package."""
    stages = {p.name for p in (ROOT / "drainpipe").iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").exists()}
    assert folders - {"system", "support"} <= stages, folders - stages
