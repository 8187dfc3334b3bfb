"""The package layering, no arrow back up: core <- models, pipelines <- inference <- trainers <- tools.

The trainer validates with the evaluator's own scoring (one loop, trainers.validation), so both report
the same dB. Benchmarks share data makers and fault injection with the tests through
benchmarks.fixtures and never import tests; nothing edits sys.path; a top-level folder imported by
its bare name fails instead of loading a second copy."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "models", "pipelines", "trainers", "inference", "tools")
ALLOWED = {
    "core": {"core"},
    "models": {"core", "models"},
    "pipelines": {"core", "pipelines"},
    "trainers": {"core", "models", "pipelines", "inference", "trainers"},  # validation scores as vsr-evaluate
    "inference": {"core", "models", "pipelines", "inference"},
    "tools": set(LAYERS),
}
GENERIC = set(LAYERS) | {"benchmarks", "tests"}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def _edges() -> list[tuple[str, int, str, str]]:
    """(file, line, importing layer, imported module) for every import in the layered packages."""
    edges = []
    for layer in LAYERS:
        for f in sorted((ROOT / layer).rglob("*.py")):
            edges += [(str(f.relative_to(ROOT)), line, layer, mod) for line, mod in _imports(f)]
    return edges


def _violations(edges) -> list[str]:
    bad = []
    for f, line, layer, mod in edges:
        parts = mod.split(".")
        if parts[0] == "vsrvfi" and len(parts) > 1 and parts[1] not in ALLOWED[layer]:
            bad.append(f"{f}:{line} ({layer}) imports {mod}")
    return bad


def test_no_import_runs_back_up_the_layers():
    bad = _violations(_edges())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_project_code_imports_only_through_the_vsrvfi_package():
    bad = [f"{f}:{line} imports {mod}" for f, line, _, mod in _edges() if mod.split(".")[0] in GENERIC]
    assert not bad, "generic top-level imports (use vsrvfi.<package>):\n" + "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path):
    """The checker itself: upward imports (also lazy ones inside functions) are reported, downward ones not."""
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom vsrvfi.core import layout\ndef g():\n    from vsrvfi.trainers.engine import Trainer\n")
    edges = [("core/x.py", line, "core", mod) for line, mod in _imports(f)]
    assert _violations(edges) == ["core/x.py:4 (core) imports vsrvfi.trainers.engine"]
    assert _violations([("tools/y.py", 1, "tools", "vsrvfi.trainers.engine")]) == []


@pytest.mark.parametrize("module, absent", [
    ("vsrvfi.core.cli", ["av", "nvidia.dali", "scenedetect", "torch"]),
    ("vsrvfi.core.manifest", ["av", "nvidia.dali", "scenedetect", "torch"]),
    ("vsrvfi.core.scenes", ["av", "nvidia.dali", "scenedetect", "torch"]),
    ("vsrvfi.models.checkpoint", ["av", "nvidia.dali", "scenedetect"]),
    ("vsrvfi.pipelines", ["av", "nvidia.dali", "scenedetect"]),
    ("vsrvfi.trainers.config", ["av", "nvidia.dali", "scenedetect"]),
])
def test_heavy_imports_happen_where_they_are_used(module, absent):
    code = f"import sys, json, {module}; print(json.dumps([m for m in {absent!r} if m in sys.modules]))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [], f"importing {module} loaded {res.stdout.strip()}"


# ------------------------------------------------------------------ data preparation inside tools/
# tools/encoding (the encoding library) <- tools/preparation (planner, executor) <- the prepare CLIs.
PREP_ALLOWED = {"tools/encoding": ("vsrvfi.tools.encoding",),
                "tools/preparation": ("vsrvfi.tools.encoding", "vsrvfi.tools.preparation")}


def _tools_graph() -> dict[str, set[str]]:
    """Module -> the vsrvfi.tools modules it imports (also `from vsrvfi.tools import x` and lazy imports)."""
    graph = {}
    for f in sorted((ROOT / "tools").rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = "vsrvfi." + ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            deps.update(m for m in mods if m.startswith("vsrvfi.tools."))
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_preparation_layers_inside_tools():
    bad = []
    for f, line, _, mod in _edges():
        for folder, allowed in PREP_ALLOWED.items():
            if f.startswith(folder + "/") and mod.startswith("vsrvfi.tools") and not mod.startswith(allowed):
                bad.append(f"{f}:{line} imports {mod}")
    assert not bad, "the encoding library / planner / executor import a tool above them:\n" + "\n".join(bad)


def test_no_import_cycle_between_tools_modules():
    graph, cycles = _tools_graph(), []

    def visit(mod: str, path: list[str]) -> None:
        for dep in sorted(graph[mod]):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(mod)

    done: set[str] = set()
    for mod in sorted(graph):
        if mod not in done:
            visit(mod, [mod])
    assert graph["vsrvfi.tools.prepare_data"], "the graph lost its edges"
    assert not cycles, "import cycles between tools modules:\n" + "\n".join(sorted(set(cycles)))


def test_the_video_tools_do_not_load_data_preparation():
    """vsr-evaluate, vsr-interpolate and vsr-upscale find scene cuts with core/scenes.py, not the encoder."""
    prep = ("vsrvfi.tools.encoding", "vsrvfi.tools.preparation", "vsrvfi.tools.split_scenes",
            "vsrvfi.tools.transcode_scenes", "vsrvfi.tools.sources", "vsrvfi.tools.import_frames")
    code = ("import sys, json, vsrvfi.tools.evaluate, vsrvfi.tools.interpolate_video, vsrvfi.tools.upscale_video; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prep!r}))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


PREP_FILES = ["core/manifest.py", "core/scenes.py", "tools/encoding/*.py", "tools/preparation/*.py",
              *(f"tools/{m}.py" for m in ("prepare_data", "split_scenes", "transcode_scenes", "extract_frames",
                                          "import_frames", "frame_folders", "sources"))]


def test_preparation_modules_and_functions_stay_small():
    """Each preparation module can be read at once: at most 400 lines, no function over 60 (issue 19)."""
    big = []
    for f in sorted(p for pattern in PREP_FILES for p in ROOT.glob(pattern)):
        text = f.read_text()
        if text.count("\n") > 400:
            big.append(f"{f.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                big.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert len(list(ROOT.glob("tools/preparation/*.py"))) >= 4, "the glob found nothing"
    assert not big, "too big to read at once:\n" + "\n".join(big)


def _project_files() -> list[Path]:
    return [f for d in (*LAYERS, "benchmarks") for f in sorted((ROOT / d).rglob("*.py"))]


def _path_edits(path: Path) -> list[int]:
    """Lines that change sys.path (sys.path.insert/append/extend/..., or assigning to it)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if isinstance(target, ast.Attribute) and target.attr == "path" and \
                isinstance(target.value, ast.Name) and target.value.id == "sys":
            lines.append(node.lineno)
    return sorted(lines)


def test_benchmarks_never_import_tests_and_nothing_edits_sys_path():
    """Benchmarks and tests share their data makers and fault injection through benchmarks.fixtures."""
    bad = [f"{f.relative_to(ROOT)}:{line} imports {mod}" for f in sorted((ROOT / "benchmarks").rglob("*.py"))
           for line, mod in _imports(f) if mod.split(".")[0] == "tests"]
    bad += [f"{f.relative_to(ROOT)}:{line} edits sys.path" for f in _project_files() for line in _path_edits(f)]
    assert not bad, "\n".join(bad)


def test_the_sys_path_rule_catches_an_edit(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("import sys\nprint(sys.path)\nsys.path.insert(0, '.')\nsys.path = []\nsys.path += ['a']\n")
    assert _path_edits(f) == [3, 4, 5]


def test_a_top_level_folder_imported_by_its_bare_name_fails_in_one_line():
    """From the repository root `import models` would be a second copy of vsrvfi.models (an empty model
    registry): it fails naming the import to use, and the vsrvfi import still works."""
    code = ("import json, sys\nout = {}\n"
            f"for name in {list(LAYERS)!r}:\n"
            "    try:\n        __import__(name)\n        out[name] = 'imported'\n"
            "    except ImportError as e:\n        out[name] = str(e)\n"
            "import vsrvfi.models.registry as r\n"
            "out['task'] = r.spec('rife').task\nout['bare'] = [n for n in out if n in sys.modules]\n"
            "print(json.dumps(out))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for name in LAYERS:
        assert out[name].startswith(f"import vsrvfi.{name} (not {name}): ") and "\n" not in out[name]
    assert out["task"] == "vfi" and out["bare"] == []


def test_one_scoring_loop():
    """The trainer's validation and vsr-evaluate score through trainers.validation.Validator.score: no
    tool or trainer module calls the per-clip scoring (inference.evaluate.evaluate_sr/_vfi) itself."""
    callers = sorted(str(f.relative_to(ROOT)) for d in ("tools", "trainers") for f in (ROOT / d).rglob("*.py")
                     if any(mod == "vsrvfi.inference.evaluate" and {"evaluate_sr", "evaluate_vfi"} & names
                            for mod, names in _imported_names(f)))
    assert callers == ["trainers/validation.py"]


def _imported_names(path: Path) -> list[tuple[str, set[str]]]:
    return [(node.module, {a.name for a in node.names}) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module]
