"""Front ends (the CLI, the app, the notebooks) use only the public API in ``workbench/__init__.py``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = [ROOT / "workbench" / "cli.py", *sorted((ROOT / "workbench" / "app").glob("*.py"))]


def _workbench_imports(tree: ast.AST, package: str) -> list[str]:
    """Modules imported from inside the workbench package, as dotted names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module and node.module.split(".")[0] == "workbench":
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "workbench"]
    return found


def test_cli_and_app_import_only_the_public_api():
    for path in FRONT_ENDS:
        package = "workbench" if path.name == "cli.py" else "workbench.app"
        for module in _workbench_imports(ast.parse(path.read_text()), package):
            front_end = module == "workbench.app" or (package == "workbench.app" and module.startswith("workbench.app"))
            assert module == "workbench" or front_end, f"{path.name} imports {module}; use `from workbench import`"


def test_notebooks_import_only_the_public_api():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(line for line in cell["source"] if not line.lstrip().startswith("%"))  # IPython magics
            for module in _workbench_imports(ast.parse(source), "workbench"):
                assert module == "workbench", f"{path.name} imports {module}"


def test_every_public_name_resolves():
    import workbench

    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name
