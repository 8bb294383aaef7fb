"""Named presets in configs/ (YAML) merged into a config dataclass, CLI options on top.

A config field is declared once, with `setting(...)`: its default, its help, and how the command
line spells it. `stylenorm.cli.options` generates the command's options from these fields, so a
field and its option cannot drift apart. Torch-free and typer-free: the CLI imports it for --help.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from stylenorm.errors import StylenormError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # a link to the top-level configs/ in a clone
# Images with more pixels are refused (decompression bombs); ~ a 12000 x 8000 photo, PIL's own default is 89 MP.
DEFAULT_MAX_PIXELS = 100_000_000

# Help of the options several trainers share, written once.
HELP_THREADS = "torch CPU threads (the machine may be shared); default: torch's."
HELP_CPU = "Train on CPU even when a GPU is present."
HELP_SEED = "Seed of the initialisation, the data order and the noise."
HELP_MIXED_PRECISION = "no, bf16 or fp16 (GPU)."
HELP_GRAD_ACCUM = "Micro-batches per optimizer step (gradient accumulation)."
HELP_GRAD_CLIP = "Clip the gradient norm to this (0 = off)."
HELP_CHECKPOINT_EVERY = "Checkpoint every N steps."
HELP_KEEP_CHECKPOINTS = "Checkpoints kept on disk."
HELP_RESUME = "Run folder or checkpoint to continue exactly."
HELP_FORCE = "Replace the model file if it exists (an existing model is never replaced otherwise)."
# Where trained weights go without -o (checkpoints.user_weights_dir), as the help names it: the
# user data folder, not --data's; no word longer than an 80-column help's column (rich cuts those short)
HELP_USER_WEIGHTS = "the weights folder of $STYLENORM_HOME, else of ~/.local/share/stylenorm"


def setting(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
            flag: str | None = None, short: str | None = None, negative: str | None = None, repeat: bool = False) -> Any:
    """A config field and its command-line option: one spelling each.

    The option is `--<name with dashes>` (and `short`, e.g. -o) unless `flag` names another spelling
    (`--style` for the list `styles`, given once per painting). A bool is a `--x/--no-x` pair (`negative`
    adds one more off-switch). A list is one comma-separated value (`--style-scales 1,0.5`), or with
    `repeat` an option given once per item (lists of files, whose names may hold commas).
    """
    return dataclasses.field(default=default, default_factory=default_factory, metadata={
        "help": help, "flag": flag, "short": short, "negative": negative, "repeat": repeat})


# Config field names before each concept had one spelling across the trainers. Presets, checkpoints
# and model cards written then still hold them; migrate() reads them as today's names.
RENAMED = {"output_dir": "run_dir", "gradient_accumulation_steps": "grad_accum", "max_grad_norm": "grad_clip",
           "sample_every": "preview_every"}


def migrate(values: dict[str, Any]) -> dict[str, Any]:
    """Saved or written options with today's field names (a value under both names: today's wins)."""
    out = {RENAMED.get(k, k): v for k, v in values.items() if k not in RENAMED}
    out.update({RENAMED[k]: v for k, v in values.items() if k in RENAMED and RENAMED[k] not in values})
    return out


@dataclasses.dataclass
class LoopSettings:
    """The training loop's options, declared once for every trainer config that inherits them
    (training.FitConfig.from_settings maps them onto the loop). A trainer changes a default with
    `loop_default`, which keeps the help written here."""

    run_dir: str | None = setting(None, help="Run folder: checkpoints, previews (and, for diffusion, the model).")
    steps: int = setting(2000, help="Optimizer steps.")
    lr: float = setting(1e-3, help="Learning rate (Adam/AdamW; the peak where there is a schedule).")
    grad_accum: int = setting(1, help=HELP_GRAD_ACCUM)
    grad_clip: float = setting(0.0, help=HELP_GRAD_CLIP)
    mixed_precision: str = setting("no", help=HELP_MIXED_PRECISION)
    seed: int = setting(0, help=HELP_SEED)
    checkpoint_every: int = setting(200, help=HELP_CHECKPOINT_EVERY)
    keep_checkpoints: int = setting(3, help=HELP_KEEP_CHECKPOINTS)
    preview_every: int = setting(200, help="Preview grid PNG every N steps (0 = none).")
    threads: int | None = setting(None, help=HELP_THREADS)
    cpu: bool = setting(False, help=HELP_CPU)


def loop_default(name: str, default: Any) -> Any:
    """A LoopSettings field with another default, for one trainer (the help stays LoopSettings')."""
    field = LoopSettings.__dataclass_fields__[name]
    return dataclasses.field(default=default, metadata=field.metadata)


def resolve_config(name_or_path: str) -> Path:
    """A config is a YAML path, or the name of a preset in configs/ (without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = CONFIG_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) or "none"
    raise StylenormError(f"config {name_or_path!r} is neither a file nor a preset; presets: {known}")


def build_config(cls: type[T], config: str | os.PathLike | None, overrides: dict[str, Any],
                 started_with: dict[str, Any] | None = None) -> T:
    """Defaults of `cls`, then the options a resumed run was `started_with` (checkpoints.run_options;
    names `cls` no longer has are dropped), then the config file's values, then every override that is not None."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {k: v for k, v in migrate(started_with or {}).items() if k in fields}
    if config is not None:
        path = resolve_config(str(config))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise StylenormError(f"config {path} is not valid YAML{at} ({getattr(exc, 'problem', None) or exc}); "
                                 "fix the file") from None
        if not isinstance(loaded, dict):
            raise StylenormError(f"config {path} must be a mapping of option: value")
        values.update(migrate(loaded))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - fields)
    if unknown:
        raise StylenormError(f"unknown config option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    hints = get_type_hints(cls)
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Numbers from YAML as the field's type: YAML 1.1 reads `5e4` as a string, not a float."""
    if get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        hint = next((a for a in get_args(hint) if a is not type(None)), hint)
    # YAML reads `true` as a bool and `"maybe"` as a string: neither is a number or a switch
    if hint is bool and not isinstance(value, bool):
        raise StylenormError(f"config option {name} must be true or false, got {value!r}")
    if hint in (int, float) and isinstance(value, bool):
        raise StylenormError(f"config option {name} must be {'an integer' if hint is int else 'a number'}, got {value!r}")
    if hint in (int, float):
        try:
            number = float(value)
            if not math.isfinite(number):  # YAML's .nan / .inf, as the command line refuses them
                raise StylenormError(f"config option {name} is {value!r}, not a finite number; pass an ordinary number")
            if hint is int:
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return number
        except (TypeError, ValueError):
            raise StylenormError(f"config option {name} must be {'an integer' if hint is int else 'a number'}, got {value!r}") from None
    return value
