"""`stylenorm stylize | styles | train-style | add-style | eval-style`: the style-transfer commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from stylenorm.cli.options import App, Config, Device, StyleChoice, StyleWeights, Threads, VggFormat, config_options
from stylenorm.config import HELP_FORCE, HELP_USER_WEIGHTS, build_config
from stylenorm.errors import StylenormError
from stylenorm.style.config import StyleTrainConfig, StylizeOptions

app = App()  # its commands join the top level (stylenorm stylize, not stylenorm style stylize)


@app.command("stylize")
@config_options(StylizeOptions)
def stylize_cmd(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    style: StyleChoice = None,
    weights: StyleWeights = None,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (one input) or folder."),
    device: Device = "cpu",
    **given,
) -> None:
    """Stylize photos and clips; writes <name>_<style>.<ext> beside each input by default.

    --style PAINTING.jpg (an image, not weights) stylizes with any painting by optimizing the picture (slower)."""
    from stylenorm.style.optimize import is_painting_file
    from stylenorm.style.stylize import check_photo_options, resolve_precision, resolve_style

    options = StylizeOptions(**given)
    check_photo_options(options)

    def report(line: str) -> None:
        typer.echo(line, err=line.startswith(("error", "note")))

    if style and is_painting_file(style):
        from stylenorm.style.optimize import stylize_with_painting

        failures = stylize_with_painting(inputs, Path(style), output, options, device=device, report=report)
    else:
        from stylenorm.style.dispatch import stylize_many

        resolve_precision(options.precision, device)  # bad values fail before the weights load
        choice = resolve_style(style, weights, device)
        if choice.note:
            typer.echo(f"note: {choice.note}", err=True)
        failures = stylize_many(choice, inputs, output, options, report=report, progress=True)
    if failures:
        raise StylenormError(f"{failures} of the inputs failed (see above); the others were written")


@app.command("styles")
def styles_cmd() -> None:
    """List the shipped styles (use the name with stylize --style NAME)."""
    from stylenorm.style.stylize import DEFAULT_WEIGHTS, list_shipped_styles

    rows = list_shipped_styles()
    if not rows:
        raise StylenormError("no shipped styles found in weights/; reinstall stylenorm")
    for name, path, card in rows:
        default = " (default)" if path.stem == DEFAULT_WEIGHTS and name == (card.get("default_style") or card["styles"][0]) else ""
        typer.echo(f"{name}{default}\t{path.name}\t{card.get('steps', '?')} steps, {card.get('image_size', '?')} px crops")
# ---- end style


# ---- diffusion


@app.command("train-style")
@config_options(StyleTrainConfig)
def train_style_cmd(config: Config = None, **overrides) -> None:
    """Train a style network (several --style images make one multi-style network)."""
    from stylenorm.style.train import train_style

    started_with = None
    if overrides.get("resume"):
        from stylenorm.checkpoints import run_options

        # alone, --resume continues with the options the run was started with; the run folder is
        # where the run is now (train_style finds it from --resume), not where it was started
        started_with = {k: v for k, v in run_options(overrides["resume"]).items() if k not in ("run_dir", "force")}
    typer.echo(f"wrote {train_style(build_config(StyleTrainConfig, config, overrides, started_with))}")


@app.command("add-style")
def add_style_cmd(
    painting: Path = typer.Argument(..., help="The painting (an image file)."),
    name: str = typer.Option(..., "--name", help="The new style's name (stylize --style NAME)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps of the new style's gamma/beta (default 200)."),
    base: Optional[Path] = typer.Option(None, "--base", help="Multi-style network to extend (default: the shipped one)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of content photos (default: the bundled demo photos)."),
    holdout: int = typer.Option(0, "--holdout", help="Photos of --data never trained on (as train-style --holdout)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate of gamma/beta (default 0.01)."),
    style_weight: Optional[float] = typer.Option(None, "--style-weight", help="Default: the base network's."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (default: torchvision's, downloaded once)."),
    vgg_format: VggFormat = "auto",
    output: Optional[Path] = typer.Option(None, "-o", "--output", help=f"Weights file; default: NAME.safetensors in {HELP_USER_WEIGHTS}."),
    resume: bool = typer.Option(False, "--resume", help="Continue the last add-style run of this NAME (or -o)."),
    force: bool = typer.Option(False, "--force", help=HELP_FORCE),
    threads: Threads = None,
) -> None:
    """Add a painting as a style of the shipped network, training only its gamma/beta (minutes, not hours)."""
    from stylenorm.style.add_style import add_style_config
    from stylenorm.style.train import train_style

    cfg = add_style_config(painting, name, steps=steps, base=base, data=data, holdout=holdout, lr=lr,
                           style_weight=style_weight, vgg_weights=vgg_weights, vgg_format=vgg_format, output=output,
                           resume=resume, force=force, threads=threads)
    if force and not resume:
        import shutil

        from stylenorm.style.train import check_config

        check_config(cfg)
        # add-style's run folder is its own, per NAME (it has no --run-dir): --force, which replaces the
        # model, starts it afresh too, or an earlier run's checkpoints would refuse the new run
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    path = train_style(cfg)
    typer.echo(f"wrote {path}; use it with: stylenorm stylize PHOTO --style {name}")


@app.command("eval-style")
def eval_style_cmd(
    weights: Optional[list[Path]] = typer.Argument(None, help="Style weights files (default: every shipped style network); a "
                                                              "painting image scores stylize --style PAINTING (optimization)."),
    paintings: Path = typer.Option(..., "--paintings", help="Folder holding the style images, named as in the model cards."),
    photos: Optional[list[Path]] = typer.Option(None, "--photos", help="Held-out photos or folders of them (repeatable)."),
    data: Optional[Path] = typer.Option(None, "--data", help="A training content folder: its fixed --holdout split is used."),
    holdout: int = typer.Option(0, "--holdout", help="Size of the held-out split of --data (as train-style --holdout)."),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Also score the bundled demo photos."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="Local VGG16 file (torchvision or caffe format)."),
    vgg_format: VggFormat = "auto",
    output: Path = typer.Option(Path("results/eval_style"), "-o", "--output", help="Folder for eval.json, eval.md and contact sheets."),
    update_card: bool = typer.Option(False, "--update-card", help="Write the scores into each weights file's model card."),
    against_optimized: bool = typer.Option(False, "--against-optimized", help="Also score the optimization mode with each "
                                                                              "painting and the network's own loss on the same "
                                                                              "photos (its upper bound; minutes per photo and style)."),
    threads: Threads = None,
) -> None:
    """Score style networks on held-out photos: palette, deep style, style match, strength, structure kept."""
    from stylenorm.style.evaluate import evaluate_styles

    evaluate_styles(weights or [], paintings, photos=photos or [], data=data, holdout=holdout, demo=demo,
                    vgg_weights=vgg_weights, vgg_format=vgg_format, output=output, update_card=update_card,
                    threads=threads, against_optimized=against_optimized, report=typer.echo)
