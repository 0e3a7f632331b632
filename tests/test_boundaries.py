"""The layer rules of docs/DESIGN.md as a test: every import statement of the shipped packages,
read with ``ast`` (imports inside functions included, relative imports resolved), checked against
the data flow

    CT -> perception -> Findings -> reasoning -> templates -> agent (the wiring)   eval (benchmarks)

- radagent (the error tree, radagent/errors.py) imports no stage package;
- perception never imports reasoning, templates, agent or eval;
- reasoning and templates take from perception only its hand-offs (perception.schema: Findings;
  perception.followup.schema: the Comparison of two studies, comparison.json) and its data (perception.registry), and may import radagent; reasoning never imports templates; neither imports
  agent or eval; templates may import reasoning (it renders reasoning's ReportDraft);
- agent is the only wiring layer: it may import every stage; its imports of eval are listed below
  by name, each with the reason, so that a new one fails here until someone decides;
- eval may import any stage (a benchmark imports what it measures); no stage imports eval;
- reasoning and templates run from findings.json alone: they import no imaging or array library
  (IMAGING below), so they need no GPU and never read voxels.

Also: no import cycle among the modules' module-level imports (those that run at import time).
Each failure names the file, the line and the rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("radagent", "perception", "reasoning", "templates", "agent", "eval")

# libraries that read or hold images; reasoning and templates (and the error tree) import none of them
IMAGING = frozenset({"numpy", "scipy", "nibabel", "pydicom", "highdicom", "pylibjpeg", "SimpleITK", "cc3d", "skimage",
                     "PIL", "torch", "monai", "totalsegmentator", "nnunetv2", "cv2"})

# agent -> eval imports that exist on purpose (module importing, module imported): reason
AGENT_IMPORTS_OF_EVAL = {
    ("agent.eval_cli", "eval.vqa_metrics"): "`radagent eval vqa` is the CLI over the VQA benchmark's scoring",
}


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, dotted
    path: Path         # its file, relative to the repository
    line: int
    target: str        # the module imported, dotted (a submodule where `from pkg import sub` names one)
    top_level: bool    # runs at import time (not inside a function, not under `if TYPE_CHECKING:`)

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((REPO / pkg).rglob("*.py")):
            out[_module_name(p)[0]] = p
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, top: bool):
    """(import node, top_level) for every import under ``node``; function bodies are not top level,
    nor is the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), top)
        else:
            yield from _walk(child, top)


def imports_of(text: str, module: str, is_pkg: bool, rel: Path) -> list[Import]:
    """Every import in ``text`` (the source of ``module``, file ``rel``), relative ones resolved."""
    package = module if is_pkg else module.rpartition(".")[0]
    out = []
    for node, top in _walk(ast.parse(text, filename=str(rel)), True):
        if isinstance(node, ast.Import):
            out += [Import(module, rel, node.lineno, a.name, top) for a in node.names]
            continue
        if node.level:  # relative: resolve against the importing module's package
            base = package.split(".")
            if node.level > len(base):
                raise AssertionError(f"{rel}:{node.lineno}: relative import beyond the top-level package")
            source = ".".join(base[:len(base) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for a in node.names:
            sub = f"{source}.{a.name}" if source else a.name
            out.append(Import(module, rel, node.lineno, sub if (sub in MODULES or not source) else source, top))
    return out


def imports_of_file(path: Path) -> list[Import]:
    module, is_pkg = _module_name(path)
    return imports_of(path.read_text(), module, is_pkg, path.relative_to(REPO))


ALL_IMPORTS = [imp for p in MODULES.values() for imp in imports_of_file(p)]


def _pkg(name: str) -> str:
    return name.split(".")[0]


def _is(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_violation(imp: Import) -> str | None:
    """The rule ``imp`` breaks, or None."""
    src, dst = _pkg(imp.module), _pkg(imp.target)
    if dst in IMAGING and src in ("reasoning", "templates", "radagent"):
        return f"{src} runs from findings.json alone: no imaging or array library ({dst})"
    if dst not in PACKAGES or src == dst:
        return None
    if src == "radagent":
        return "radagent (the error tree) imports no stage package"
    if dst == "radagent":
        return None  # every stage raises from the one error tree
    if src == "perception":
        return "perception never imports reasoning, templates, agent or eval (it is the first stage)"
    if src in ("reasoning", "templates"):
        if dst == "perception":
            if any(_is(imp.target, m) for m in ("perception.schema", "perception.followup.schema",
                                                 "perception.registry")):
                return None
            return (f"{src} takes from perception only perception.schema (Findings), perception.followup.schema "
                    f"(Comparison) and perception.registry; "
                    f"errors come from radagent.errors")
        if src == "templates" and dst == "reasoning":
            return None  # templates render reasoning's drafts (the data flows that way)
        if src == "reasoning" and dst == "templates":
            return "reasoning never imports templates (templates render reasoning's output, not the reverse)"
        return f"{src} never imports {dst} (agent wires the stages; eval measures them)"
    if src == "agent":
        if dst == "eval" and (imp.module, imp.target) not in AGENT_IMPORTS_OF_EVAL:
            return ("agent imports eval only where AGENT_IMPORTS_OF_EVAL in tests/test_boundaries.py lists the "
                    "pair with its reason (benchmarks and synthetic data are not a dependency of the product)")
        return None
    return None  # eval: a benchmark imports what it measures


def test_the_walker_sees_every_package_and_resolves_relative_imports():
    assert {_pkg(m) for m in MODULES} == set(PACKAGES)
    assert "perception.schema" in MODULES and "radagent.errors" in MODULES
    # function-level imports are seen (not top level), relative imports resolve against the package,
    # `from pkg import submodule` names the submodule, TYPE_CHECKING imports are not top level
    src = ("from . import report\nfrom .grounding import Validator\nimport perception.schema as s\n"
           "def f():\n    from perception.io import load_ct\n"
           "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent import cli\n")
    got = [(i.target, i.line, i.top_level) for i in imports_of(src, "reasoning.probe", False, Path("reasoning/probe.py"))]
    assert got == [("reasoning.report", 1, True), ("reasoning.grounding", 2, True), ("perception.schema", 3, True),
                   ("perception.io", 5, False), ("typing", 6, True), ("agent.cli", 8, False)]
    deep = imports_of("from ... import registry\nfrom ..base import x\nfrom .config import UniTConfig\n",
                      "perception.segment.unit.probe", False, Path("perception/segment/unit/probe.py"))
    assert [i.target for i in deep] == ["perception.registry", "perception.segment.base", "perception.segment.unit.config"]
    pkg = imports_of("from .base import x\n", "perception.segment", True, Path("perception/segment/__init__.py"))
    assert [i.target for i in pkg] == ["perception.segment.base"]
    with pytest.raises(AssertionError, match="beyond the top-level package"):
        imports_of("from .. import templates\n", "reasoning.probe", False, Path("reasoning/probe.py"))
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 5, "perception.io", False))
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 5, "perception.followup.register", False))
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 1, "perception.followup.schema", True)) is None
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 1, "perception.schema", True)) is None
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 1, "templates.render", True))
    assert rule_violation(Import("templates.x", Path("templates/x.py"), 1, "reasoning.report", True)) is None
    assert rule_violation(Import("perception.x", Path("perception/x.py"), 1, "eval.synthetic", False))
    assert rule_violation(Import("perception.x", Path("perception/x.py"), 1, "radagent.errors", True)) is None
    assert rule_violation(Import("radagent.errors", Path("radagent/errors.py"), 1, "perception.errors", False))
    assert rule_violation(Import("agent.x", Path("agent/x.py"), 1, "eval.synthetic", False))
    assert rule_violation(Import("eval.x", Path("eval/x.py"), 1, "agent.cli", False)) is None
    assert rule_violation(Import("reasoning.x", Path("reasoning/x.py"), 9, "numpy", False))
    assert rule_violation(Import("templates.x", Path("templates/x.py"), 9, "PIL.Image", False))
    assert rule_violation(Import("perception.x", Path("perception/x.py"), 9, "numpy", True)) is None


def test_layer_rules():
    bad = [f"{imp.where()}: {imp.module} imports {imp.target} -- {why}"
           for imp in ALL_IMPORTS if (why := rule_violation(imp))]
    assert not bad, f"{len(bad)} import(s) break the layer rules:\n" + "\n".join(bad)


def test_listed_agent_imports_of_eval_still_exist():
    """The allowance list shrinks with the code: an entry no import uses any more must go."""
    used = {(i.module, i.target) for i in ALL_IMPORTS}
    stale = [pair for pair in AGENT_IMPORTS_OF_EVAL if pair not in used]
    assert not stale, f"AGENT_IMPORTS_OF_EVAL lists imports the code no longer makes: {stale}"


def _find_cycle(graph: dict[str, dict[str, Import]]) -> list[str] | None:
    """One cycle (a list of modules, first == last) in ``graph``, or None. Iterative DFS."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for root in sorted(graph):
        if colour[root] != WHITE:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
            elif colour.get(nxt) == GREY:
                return path[path.index(nxt):] + [nxt]
            elif colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def module_graph() -> dict[str, dict[str, Import]]:
    """module -> {imported module: the first import statement making that edge}, module level only,
    among the packages' own modules."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for imp in ALL_IMPORTS:
        if imp.top_level and imp.target in MODULES and imp.target != imp.module:
            graph[imp.module].setdefault(imp.target, imp)
    return graph


def test_find_cycle_reports_the_path():
    g = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _find_cycle(g) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_module_level_import_cycle():
    graph = module_graph()
    cycles, seen = [], set()
    while (cycle := _find_cycle(graph)) is not None:  # report each independent cycle, not only the first
        key = frozenset(cycle)
        if key in seen:
            break
        seen.add(key)
        edges = [graph[a][b] for a, b in pairwise(cycle)]
        cycles.append(" -> ".join(cycle) + "\n" + "\n".join(f"    {e.where()}: {e.module} imports {e.target}"
                                                            for e in edges))
        del graph[cycle[0]][cycle[1]]  # break it and look for another
    assert not cycles, "module-level import cycle(s) (rule: no cycles):\n" + "\n".join(cycles)
