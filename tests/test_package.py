"""The package's shape as users meet it: one import name, one public surface, one place
for errors. Pure checks over the source and the imported package (no Redis)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import streamboot
import streamboot.errors

SOURCE = Path(__file__).resolve().parents[1] / "framework"
OUTSIDE = [Path(__file__).resolve().parents[1] / d for d in ("sample_app", "tests", "bench")]


def _modules(*roots: Path) -> list[Path]:
    return [p for root in roots for p in sorted(root.rglob("*.py"))]


def test_nothing_imports_framework_by_its_folder_name() -> None:
    """Inside the package imports are relative; elsewhere they name `streamboot`. An
    absolute `framework` import would load a second copy of every module."""
    offenders = []
    for path in _modules(SOURCE, *OUTSIDE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno}" for n in names
                          if n == "framework" or n.startswith("framework.")]
    assert offenders == []


def test_every_exception_lives_in_errors_under_streambooterror() -> None:
    defined_elsewhere = []
    for path in _modules(SOURCE):
        if path.name == "errors.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception"))
                    for b in node.bases):
                defined_elsewhere.append(f"{path.relative_to(SOURCE)}:{node.name}")
    # The CLI's private signal for "Redis failed" never leaves the command it ends.
    assert defined_elsewhere == ["cli/common.py:_RedisFailure"]
    classes = [c for _, c in inspect.getmembers(streamboot.errors, inspect.isclass)
               if issubclass(c, BaseException) and c.__module__ == "streamboot.errors"]
    assert len(classes) > 15
    for cls in classes:
        assert issubclass(cls, streamboot.StreambootError), cls
        assert cls.__name__ in streamboot.__all__, f"{cls.__name__} is not exported"


def test_the_surface_is_what_users_write_and_no_internals() -> None:
    for name in ("Application", "StreamHandler", "Message", "Publisher", "IdempotentScript",
                 "SingleInstanceLock", "FlatCodec", "JsonCodec", "StreambootContainer",
                 "RedisOperator", "load_settings", "build_client", "RedisServer"):
        assert name in streamboot.__all__, name
        assert getattr(streamboot, name) is not None
    for internal in ("ListenerSpec", "ListenerContainer", "StreamEntry", "PendingEntry"):
        assert internal not in streamboot.__all__
    assert sorted(streamboot.__all__) == sorted(set(streamboot.__all__))
    assert all(hasattr(streamboot, name) for name in streamboot.__all__)


def test_the_sample_app_uses_only_the_surface() -> None:
    sample = Path(__file__).resolve().parents[1] / "sample_app"
    deep = []
    for path in _modules(sample):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "streamboot."):
                deep.append(f"{path.name}: {node.module}")
    assert deep == []


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The framework modules ``name`` imports, type-only imports included."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[:len(package) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for candidate in (target, *(f"{target}.{a.name}".lstrip(".") for a in node.names)):
                if candidate in modules and candidate != name:
                    found.add(candidate)
    return found


def test_no_import_cycle_between_modules_type_only_imports_included() -> None:
    paths = {}
    for path in _modules(SOURCE):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: _imports(path, name, set(paths)) for name, path in paths.items()}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        for dep in graph[name]:
            if dep in trail:
                cycles.append(" -> ".join([*trail[trail.index(dep):], dep]))
            elif dep not in done:
                visit(dep, [*trail, dep])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_the_root_holds_only_what_users_import() -> None:
    """At most 16 modules at the root (docs/architecture.md, "The tree"): each exported
    from ``streamboot`` or named in the docs for users; the rest live in components."""
    root = sorted(p.stem for p in SOURCE.glob("*.py"))
    assert len(root) <= 16, root
    assert root == ["__init__", "__main__", "application", "client", "codecs", "devserver",
                    "di", "errors", "handler", "lock", "message", "publisher", "testing"]
