"""The command line's building blocks: options generated from a config dataclass, the option types
several commands share, and a Typer app whose help shows plain flags without a value type.

Torch-free: `import stylenorm.cli` (and so every --help) must stay fast.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, Union, get_args, get_origin, get_type_hints

import typer
from typer.core import TyperCommand, TyperGroup

from stylenorm.atomic import check_writable
from stylenorm.config import HELP_THREADS
from stylenorm.errors import StylenormError


# ---------------------------------------------------------------- help without `<bool>`
class _FlagsWithoutType:
    """Typer prints every option's value type, `--cpu <bool>` too, though a flag takes no value;
    a blank metavar is what its help shows instead."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


# ---------------------------------------------------------------- finite numbers only
def check_finite(name: str, value: float) -> float:
    """value, unless it is nan or +-inf: the one rule (and message) for every number the command line reads."""
    if not math.isfinite(value):
        raise StylenormError(f"{name} {value} is not a finite number; pass an ordinary number (nan and inf are "
                             f"not), or leave {name} out for its default")
    return value


def _long_name(param: Any) -> str:
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0] if param.opts else param.name)


class _FiniteFloats:
    """Typer reads nan, inf and 1e999 as floats, and they went on to an all-black sample or a NaN
    run (--guidance nan exited 0). Every float the command line gives any command, from options
    generated from a config or written by hand, is checked here once it is read, before the command
    runs: by value, so it holds whichever way the Typer in use converts (click types or pydantic)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            value = ctx.params.get(param.name)
            for number in value if isinstance(value, (list, tuple)) else [value]:  # repeatable options too
                if isinstance(number, float):
                    check_finite(_long_name(param), number)
        return rest


class FlagsCommand(_FlagsWithoutType, _FiniteFloats, TyperCommand):
    pass


class FlagsGroup(_FlagsWithoutType, _FiniteFloats, TyperGroup):
    pass


class App(typer.Typer):
    """typer.Typer whose commands and groups show flags as `--cpu`, `--demo/--no-demo` and take only finite floats."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=FlagsGroup, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        return super().command(*args, cls=FlagsCommand, **kwargs)


# ---------------------------------------------------------------- options from a config dataclass
def option_name(field: dataclasses.Field) -> str:
    """The option a config field is given with: its `flag`, else its name with dashes."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


_NOUNS = {int: "integers", float: "numbers", str: "names"}


def _unwrap_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


def _field_option(field: dataclasses.Field, hint: Any) -> tuple[str, Any, Callable[[Any], Any]]:
    """(parameter name, Annotated type, converter) of the one option of `field`."""
    meta = field.metadata
    if "help" not in meta:
        raise TypeError(f"config field {field.name} has no help; declare it with stylenorm.config.setting")
    hint = _unwrap_optional(hint)
    main = option_name(field)
    decls = [main] + ([meta["short"]] if meta.get("short") else [])
    convert: Callable[[Any], Any] = lambda value: value  # noqa: E731
    if hint is bool:
        decls = [f"{main}/--no-{main[2:]}"] + ([f" /{meta['negative']}"] if meta.get("negative") else [])
        cli_type = Optional[bool]
    elif get_origin(hint) in (list, tuple):
        element = get_args(hint)[0]
        if meta.get("repeat"):
            cli_type, convert = Optional[list[element]], list
        else:
            def convert(text: str, name: str = main, element: type = element) -> list:
                items = [v.strip() for v in text.split(",") if v.strip()]
                try:
                    values = [element(v) for v in items]
                except ValueError:
                    raise StylenormError(f"{name} must be a comma-separated list of {_NOUNS[element]}, "
                                         f"got {text!r}") from None
                return [check_finite(name, v) for v in values] if element is float else values
            cli_type = Optional[str]
    else:
        cli_type = Optional[hint]
    return field.name, Annotated[cli_type, typer.Option(*decls, help=meta["help"])], convert


def _fields_in_help_order(cls: type) -> list[dataclasses.Field]:
    """The fields a config declares itself first, then those it inherits (LoopSettings'), so a command's
    help opens with what is particular to it."""
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    fields = dataclasses.fields(cls)
    return [f for f in fields if f.name not in inherited] + [f for f in fields if f.name in inherited]


def config_options(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command that also takes one option per field of config dataclass `cls`.

    The decorated command declares its own parameters (e.g. `config: Config = None`) and
    `**overrides`, which receives {field: value} of the options given; fields whose option was not
    given are absent, so presets and defaults hold.
    """
    hints = get_type_hints(cls)
    generated = [_field_option(f, hints[f.name]) for f in _fields_in_help_order(cls)]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command_hints = get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=command_hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        clash = {p.name for p in own} & {name for name, _, _ in generated}
        if clash:
            raise TypeError(f"{command.__name__} declares {sorted(clash)}, which are fields of {cls.__name__}")
        converters = {name: convert for name, _, convert in generated}

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            overrides = {name: convert(value) for name, convert in converters.items()
                         if (value := kwargs.pop(name)) is not None and value != []}
            return command(**kwargs, **overrides)

        params = own + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                        for name, annotation, _ in generated]
        run.__signature__ = inspect.Signature(params)
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


# ---------------------------------------------------------------- options several commands share
def _checked_device(value: str | None) -> str | None:
    """--device is checked while the command line is read, before any work starts."""
    if value is not None:
        from stylenorm.devices import check_device

        check_device(value)
    return value


def _checked_vgg_format(value: str) -> str:
    """--vgg-format is checked while the command line is read, also where no VGG16 is loaded."""
    from stylenorm.style.config import check_vgg_format

    return check_vgg_format(value)


Config = Annotated[Optional[str], typer.Option(
    "--config", "-c", help="Preset in configs/ (e.g. style, diffusion_mnist) or a YAML file; options given here win.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help=HELP_THREADS)]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.", callback=_checked_device)]
BenchDevice = Annotated[Optional[str], typer.Option(
    "--device", help="cpu, cuda or cuda:N; default: cpu, and cuda too when present.", callback=_checked_device)]


def _writable_output(value: Path) -> Path:
    """A bench's table is checked writable while the command line is read: before minutes of measuring."""
    check_writable(value)
    return value


BenchOutput = Annotated[Path, typer.Option("-o", "--output", help="Markdown table to write.", callback=_writable_output)]
Repeats = Annotated[int, typer.Option("--repeats", help="Timed repetitions per measurement (median is reported).")]
StyleChoice = Annotated[Optional[str], typer.Option(
    "--style", "-s", help="Shipped style NAME, a weights PATH, or a blend a:0.7,b:0.3.")]
StyleWeights = Annotated[Optional[Path], typer.Option(
    "--weights", help="Multi-style weights file whose styles --style names.")]
VggFormat = Annotated[str, typer.Option(
    "--vgg-format", help="auto, caffe or torchvision.", callback=_checked_vgg_format)]
