"""The package's layers point one way: data/ never imports model/ (tokenizers and backbone names live in the
neutral genre_lab/backbones.py), at module level or inside a function."""

import ast
from pathlib import Path

import genre_lab

PACKAGE = Path(genre_lab.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_data_never_imports_model_and_backbones_import_neither():
    for path in sorted((PACKAGE / "data").glob("*.py")):
        assert not {m for m in imported_modules(path) if m.startswith("genre_lab.model")}, path.name
    backbones = imported_modules(PACKAGE / "backbones.py")
    assert not {m for m in backbones if m.startswith(("genre_lab.model", "genre_lab.data"))}
