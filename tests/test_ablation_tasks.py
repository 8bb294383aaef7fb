"""The ablation tasks as objects: one table of them, each consistent with its model and the report's schema,
and modules that import downwards only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from stylenorm.ablation.claims import LABELS
from stylenorm.ablation.records import Grid
from stylenorm.ablation.report import CSV_COLUMNS
from stylenorm.ablation.tasks import TASKS, get_task
from stylenorm.errors import StylenormError
from stylenorm.norms import DEFAULT_SPECS, layer_kind

REPO = Path(__file__).resolve().parents[1]
ABLATION = REPO / "stylenorm" / "ablation"


def test_the_table_holds_the_three_tasks_and_refuses_others():
    assert set(TASKS) == {"style", "diffusion", "classification"}
    with pytest.raises(StylenormError, match="unknown ablation task 'segmentation'"):
        get_task("segmentation")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_metric_a_task_records_has_a_column_and_a_label(name):
    task = TASKS[name]
    recorded = [*task.metrics, f"bn_train_mode_{task.bn_measure}", f"bn_eval_mode_{task.bn_measure}"]
    assert task.quality in task.metrics
    assert set(recorded) <= set(CSV_COLUMNS)
    assert all(metric in LABELS for metric in task.metrics)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_builds_its_model_with_every_default_spec(name):
    task = TASKS[name]
    grid = Grid(task=name, batch_sizes=(2, 8))
    preset = task.preset("small")
    for spec in DEFAULT_SPECS:
        model = task.build_model(grid, preset, spec)
        widths = {m.num_features if hasattr(m, "num_features") else m.num_channels
                  for m in model.modules() if layer_kind(m) is not None}
        if spec != "none":
            # the report's notes on plain gn rest on these widths (the U-Net's decoder also normalises
            # its concatenated inputs, which the level widths leave out)
            assert task.widths(preset) <= widths, spec


def _imports(path: Path) -> set[str]:
    """The stylenorm modules a file imports, anywhere in it but under `if TYPE_CHECKING:` (annotations only)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
               for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("stylenorm.")}


def test_the_ablation_modules_import_in_one_direction():
    """No cycle, not even through an import inside a function (grid -> report -> grid was one)."""
    modules = {f"stylenorm.ablation.{p.stem}": p for p in ABLATION.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        for dep in graph[name]:
            visit(dep, (*trail, name))

    for name in graph:
        visit(name, ())


def test_the_report_loads_no_model_code():
    # the presets name the sampler's defaults, which live torch-free in stylenorm.diffusion.defaults
    code = ("import sys, stylenorm.ablation.report; "
            "print(sorted(m for m in sys.modules if m.startswith(('stylenorm.style', 'stylenorm.diffusion', "
            "'stylenorm.training', 'stylenorm.ablation.classification_task', 'stylenorm.ablation.style_task', "
            "'stylenorm.ablation.diffusion_task')) and m not in ('stylenorm.diffusion', 'stylenorm.diffusion.defaults')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
