"""The package's layers point one way (README, Design notes): each module imports only from its own subpackage and
the layers below it, at module level or inside a function; the commands at the top are imported by no subpackage."""

import ast
from pathlib import Path

import genre_lab

PACKAGE = Path(genre_lab.__file__).parent
# Lowest first. A unit is a subpackage or a top-level module; leaves (paths, errors, atomic files, figure names)
# hold no logic of a layer and may be imported from anywhere. checks: the error type and plain value checks without
# Hydra (errors.py re-exports them), so that the ONNX runtime in serving/ raises the commands' error.
LEAVES = {"io", "errors", "checks", "runs.layout", "scoring.figure_names"}
LAYERS = [
    {"framework"},
    {"config_dir"},
    {"backbones"},
    {"data"},
    {"scoring"},
    {"model"},
    # the ONNX runtime (data's template and cutting, scoring's rule; never model/, i.e. torch); runs/ reads exported
    # folders through it
    {"serving"},
    {"runs"},
    {"settings", "sweeps", "benchmark", "train_baseline"},
    {"train", "evaluate", "predict", "export", "serve", "ensemble", "soup", "bench", "compare", "cli", "__main__",
     "__init__"},
]
COMMANDS = LAYERS[-1]
# command -> command: `python -m genre_lab` is the CLI (bench builds genre_lab's recipe with the builders train
# uses, model/build and framework/trainer, from benchmark/, and imports no command)
BETWEEN_COMMANDS = {("__main__", "cli")}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def unit_of(dotted: str) -> str:
    """``genre_lab.runs.layout`` -> ``runs.layout`` when a leaf, else ``runs``; a top-level module is its own unit."""
    parts = dotted.split(".")[1:] or ["__init__"]
    return ".".join(parts[:2]) if ".".join(parts[:2]) in LEAVES else parts[0]


def layer(unit: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if unit in units)


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        out.append((".".join(("genre_lab", *rel.parts)), path))
    return out


def test_every_module_has_a_layer():
    for dotted, _ in modules():
        unit = unit_of(dotted)
        assert unit in LEAVES or any(unit in units for units in LAYERS), f"{dotted}: add its unit to LAYERS"


def test_imports_point_down_only():
    wrong = []
    for dotted, path in modules():
        source = unit_of(dotted)
        for target in (m for m in imported_modules(path) if m.startswith("genre_lab.")):
            to = unit_of(target)
            if to == source or to in LEAVES or (source, to) in BETWEEN_COMMANDS:
                continue
            if source in LEAVES or layer(to) >= layer(source):
                wrong.append(f"{dotted} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_leaves_import_only_leaves():
    for dotted, path in modules():
        if unit_of(dotted) in LEAVES:
            targets = {unit_of(m) for m in imported_modules(path) if m.startswith("genre_lab.")}
            assert targets <= LEAVES, (dotted, targets - LEAVES)


def test_no_subpackage_imports_a_command():
    for dotted, path in modules():
        if unit_of(dotted) not in COMMANDS:
            imported = {m for m in imported_modules(path) if m.startswith("genre_lab.")}
            assert not {m for m in imported if unit_of(m) in COMMANDS - {"__init__"}}, dotted


def test_data_never_imports_model_and_backbones_import_neither():
    for path in sorted((PACKAGE / "data").glob("*.py")):
        assert not {m for m in imported_modules(path) if m.startswith("genre_lab.model")}, path.name
    backbones = imported_modules(PACKAGE / "backbones.py")
    assert not {m for m in backbones if m.startswith(("genre_lab.model", "genre_lab.data"))}


MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 350  # above it, the module's docstring says why ("over 350 lines: …")


def test_functions_and_modules_stay_short():
    """Small files with one job and short functions (issue 24): a function over 50 lines, or a module over 350
    without its reason in the docstring, fails here rather than in review."""
    long = []
    for dotted, path in modules():
        source = path.read_text()
        tree = ast.parse(source)
        if len(source.splitlines()) > MAX_MODULE_LINES and "over 350 lines:" not in (ast.get_docstring(tree) or ""):
            long.append(f"{dotted}: {len(source.splitlines())} lines")
        long += [f"{dotted}.{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)
