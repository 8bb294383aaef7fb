"""The page of `stylenorm serve`: five tabs (stylize, any painting, video, diffusion samples, model cards).

The work behind each button is a plain function (`stylize_upload`, `sample_grid`)
that raises StylenormError on bad input; the Gradio handlers turn that into a
message on the page (gr.Error), so an unreadable upload never breaks the server.
Everything the server writes (Gradio's upload cache and our results) lies in one
temporary folder that `Server.close` removes.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from stylenorm.checkpoints import WEIGHTS_DIR
from stylenorm.config import DEFAULT_MAX_PIXELS
from stylenorm.diffusion.config import SampleOptions
from stylenorm.errors import Cancelled, StylenormError
from stylenorm.images import load_image
from stylenorm.serve.gradio_extra import require_gradio
from stylenorm.style.add_style import DEFAULT_STEPS as ADD_STYLE_STEPS

if TYPE_CHECKING:
    from stylenorm.diffusion.sample import Drawn

from stylenorm.style.config import DEFAULT_STABILIZE, DEMO_DIR, STABILIZE_MODES, StylizeOptions
from stylenorm.style.loss_recipes import OPTIMIZE_ITERATIONS

DEFAULT_MAX_SIZE = 1024  # long side of the photo the page stylizes by default: seconds on a CPU
GRID_SCALE = 4  # 28 px digits shown 4x larger (nearest neighbour, so pixels stay sharp)
MAX_PAGE_SAMPLES = 256  # a grid the page shows at once
THUMBNAIL_PHOTO = DEMO_DIR / "chelsea.png"
THUMBNAIL_SIZE = 160
EXAMPLE_PHOTOS = sorted(p for p in DEMO_DIR.iterdir() if p.suffix.lower() in (".png", ".jpg"))
STYLE_MODES = ("One style", "Blend styles")
MAX_UPLOAD = "200mb"  # Gradio refuses bigger files itself; the pixel limit guards against small bombs
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # the default theme would fetch web fonts


@dataclass
class ServeConfig:
    device: str = "cpu"
    max_pixels: int = DEFAULT_MAX_PIXELS
    vgg_weights: str | None = None  # the any-painting tab's loss network (default: torchvision's, downloaded once)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stylenorm_serve_")))


def style_names() -> list[str]:
    """Every style `stylenorm styles` lists, in its order."""
    from stylenorm.style.stylize import list_shipped_styles

    return [name for name, _, _ in list_shipped_styles()]


def blend_text(names: list[str], weights: list[float]) -> str:
    """Slider values -> the blend syntax of --style (a:0.7,b:0.3); only styles above zero take part."""
    parts = [(name, float(w)) for name, w in zip(names, weights) if w and float(w) > 0]
    if not parts:
        raise StylenormError("every blend slider is at 0; move at least one above 0, or untick 'blend styles'")
    return ",".join(f"{name}:{w:g}" for name, w in parts)


@functools.lru_cache(maxsize=4)
def _style_choice(style: str | None, device: str):
    from stylenorm.style.stylize import resolve_style

    return resolve_style(style, None, device)


def stylize_upload(src: str | os.PathLike | None, style: str | None, options: StylizeOptions, config: ServeConfig,
                   progress: Callable[..., object] | None = None) -> tuple[np.ndarray, np.ndarray, Path]:
    """(before, after, PNG to download): the uploaded photo stylized exactly as `stylenorm stylize` would,
    with `style` (a name, or a blend a:0.7,b:0.3) and the page's options.

    progress: called as progress(fraction, desc=...) (gr.Progress on the page)."""
    from stylenorm.style.stylize import check_photo_options, stylize_file

    if not src:
        raise StylenormError("no photo yet: drop one on the upload box or click it to pick a file")
    src = Path(src)
    options = replace(options, max_pixels=config.max_pixels)
    check_photo_options(options)  # range checks before any work
    if progress:
        progress(0.05, desc="reading the photo")
    load_image(src, config.max_pixels)  # bad files fail here, with their own message, before the model loads
    if progress:
        progress(0.15, desc="loading the style")
    choice = _style_choice(style, config.device)
    if progress:
        progress(0.3, desc=f"stylizing with {choice.label}")
    out_dir = config.workdir / "results" / uuid.uuid4().hex
    out_dir.mkdir(parents=True)
    dst = out_dir / f"{src.stem}_{choice.label}.png"
    stylize_file(choice, src, dst, options, progress=progress is not None)
    after = load_image(dst, None).rgb
    before = np.asarray(Image.fromarray(load_image(src, config.max_pixels).rgb).resize(
        (after.shape[1], after.shape[0]), Image.LANCZOS))
    return before, after, dst


@functools.lru_cache(maxsize=1)
def _diffusion_model(device: str):
    from stylenorm.diffusion.sample import load_diffusion_model

    return load_diffusion_model(None, device)


def sample_grid(options: SampleOptions, config: ServeConfig) -> tuple[np.ndarray, Path, str]:
    """(grid to show, PNG to download, the digits it holds) of the shipped diffusion model's samples."""
    from stylenorm.diffusion.sample import make_grid, sample, save_grid

    if options.num_samples > MAX_PAGE_SAMPLES:
        raise StylenormError(f"{options.num_samples} samples: ask for 1 to {MAX_PAGE_SAMPLES}")
    drawn = sample(_diffusion_model(config.device), options, progress=True)
    out_dir = config.workdir / "results" / uuid.uuid4().hex
    name = f"samples_{options.sampler}_{options.steps}steps_seed{options.seed}.png"
    path = save_grid(drawn.images, out_dir / name, drawn.nrow, scale=GRID_SCALE)
    grid = make_grid(drawn.images, drawn.nrow)
    shown = Image.fromarray(grid).resize((grid.shape[1] * GRID_SCALE, grid.shape[0] * GRID_SCALE), Image.NEAREST)
    return np.asarray(shown.convert("RGB")), path, sample_caption(drawn)


def paint_upload(src: str | os.PathLike | None, painting: str | os.PathLike | None, options: StylizeOptions,
                 config: ServeConfig, stop: threading.Event | None = None) -> tuple[np.ndarray, Path]:
    """(result, PNG to download): the photo optimized against the painting, as `stylize --style PAINTING`
    does (its progress bar is the optimisation's, which the page shows); `stop`: the page's Cancel."""
    from stylenorm.style.optimize import stylize_with_painting

    if not src:
        raise StylenormError("no photo yet: drop one on the photo box or click it to pick a file")
    if not painting:
        raise StylenormError("no painting yet: drop an image of the painting on the painting box")
    src, painting = Path(src), Path(painting)
    out_dir = config.workdir / "results" / uuid.uuid4().hex
    out_dir.mkdir(parents=True)
    dst = out_dir / f"{src.stem}_{painting.stem}.png"
    options = replace(options, max_pixels=config.max_pixels, vgg_weights=config.vgg_weights)
    errors: list[str] = []
    failures = stylize_with_painting([src], painting, dst, options, device=config.device, stop=stop,
                                     report=lambda line: errors.append(line) if line.startswith("error") else None)
    if failures and stop is not None and stop.is_set():
        raise Cancelled(errors[0].removeprefix("error: ") if errors else "cancelled")
    if failures:
        raise StylenormError(errors[0].removeprefix("error: ") if errors else "the optimisation failed")
    return load_image(dst, None).rgb, dst


def add_painting_style(painting: str | os.PathLike | None, name: str, steps: int, config: ServeConfig) -> Path:
    """`stylenorm add-style PAINTING --name NAME`: the painting as a new style of the shipped network (its
    γ/β trained, minutes), written into the user's data folder, where every tab finds it afterwards."""
    from stylenorm.style.add_style import add_style_config
    from stylenorm.style.train import train_style

    if not painting:
        raise StylenormError("no painting yet: drop an image of the painting on the painting box")
    name = (name or "").strip()
    if not name:
        raise StylenormError("name the new style first (letters, digits, _ and -)")
    cfg = add_style_config(Path(painting), name, steps=int(steps), vgg_weights=config.vgg_weights)
    return train_style(cfg)


def stylize_clip(src: str | os.PathLike | None, style: str | None, options: StylizeOptions,
                 config: ServeConfig, stop: threading.Event | None = None) -> Path:
    """The uploaded clip stylized as `stylize clip.mp4` does (sound and timing kept), as an MP4 to play;
    `stop`: the page's Cancel."""
    from stylenorm.style.temporal import stylize_video
    from stylenorm.video import require_av

    if not src:
        raise StylenormError("no clip yet: drop a video file on the clip box")
    require_av()
    src = Path(src)
    choice = _style_choice(style, config.device)
    out_dir = config.workdir / "results" / uuid.uuid4().hex
    out_dir.mkdir(parents=True)
    dst = out_dir / f"{src.stem}_{choice.label}.mp4"
    return stylize_video(choice, src, dst, replace(options, max_pixels=config.max_pixels), progress=True, stop=stop)


def style_thumbnails(names: list[str], config: ServeConfig) -> list[tuple[str, str]]:
    """(picture, style name) per style, for the page's style picker: the demo cat painted in that style, as
    `stylize` paints it (the paintings themselves do not ship with stylenorm). Made once per server."""
    from stylenorm.style.stylize import stylize_file

    folder = config.workdir / "thumbnails"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        path = folder / f"{name}.png"
        if not path.is_file():
            stylize_file(_style_choice(name, config.device), THUMBNAIL_PHOTO, path, StylizeOptions(max_size=THUMBNAIL_SIZE))
        out.append((str(path), name))
    return out


def sample_caption(drawn: Drawn) -> str:
    """The digits a grid holds, as the page writes under it: per column where each column is one class."""
    if drawn.labels is None:
        return f"{len(drawn.images)} unconditional samples."
    if drawn.columns_are_classes:
        return "Columns, left to right: digits " + " ".join(str(c) for c in range(drawn.nrow)) + "."
    return "Digits asked for, row by row: " + " ".join(str(int(v)) for v in drawn.labels) + "."


def model_cards() -> list[tuple[str, dict]]:
    """(file name, card) of every shipped model and of the styles found in the user's data folder."""
    from stylenorm.style.stylize import read_card, shipped_style_files

    paths = sorted(WEIGHTS_DIR.glob("*.safetensors"))
    paths += [p for p in shipped_style_files() if p.parent.resolve() != WEIGHTS_DIR.resolve()]
    return [(p.name, read_card(p)) for p in paths]


def _cards_markdown(cards: list[tuple[str, dict]]) -> str:
    lines = ["| model | what it is | trained on |", "| --- | --- | --- |"]
    for name, card in cards:
        if card.get("styles"):
            what = f"{card.get('architecture', 'style network')}, styles: " + ", ".join(card["styles"])
        elif "unet" in card:
            what = f"diffusion U-Net, {card.get('parameters', '?')} parameters, {card.get('weights', '')} weights"
        else:
            what = f"{card.get('model', '?')}: {card.get('purpose', '')}".rstrip(": ")
        data = card.get("data", "")
        if isinstance(data, dict):
            data = data.get("source", "")
        lines.append(f"| {name} | {what} | {data} |")
    return "\n".join(lines)


def build_app(config: ServeConfig):
    """The Gradio Blocks of the page (not launched)."""
    gr = require_gradio()
    from stylenorm.diffusion.sample import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS

    names = style_names()
    if not names:
        raise StylenormError("no shipped styles found in weights/; reinstall stylenorm")

    def on_stylize(photo, style, mode, strength, preserve, scale, max_size, *weights,
                   progress=gr.Progress(track_tqdm=True)):
        try:
            chosen = blend_text(names, list(weights)) if mode == STYLE_MODES[1] else style
            options = StylizeOptions(max_size=int(max_size) if max_size else None, strength=float(strength),
                                     preserve_color=bool(preserve), style_scale=float(scale))
            before, after, path = stylize_upload(photo, chosen, options, config, progress)
        except StylenormError as exc:
            # the upload's name, not the path of Gradio's cached copy
            message = str(exc).replace(str(photo), Path(photo).name) if photo else str(exc)
            raise gr.Error(message, print_exception=False) from None
        except MemoryError:
            raise gr.Error("the photo does not fit in memory; lower the maximum size", print_exception=False) from None
        return (before, after), str(path), f"Stylized with **{chosen}**: {after.shape[1]}x{after.shape[0]} px."

    def on_pick(evt) -> str:
        return names[evt.index]

    # Gradio hands the clicked thumbnail to a parameter annotated SelectData; this module's annotations are
    # strings (postponed), which it cannot resolve, so the class itself is set
    on_pick.__annotations__["evt"] = gr.SelectData

    def on_photo(photo):
        """The upload's preview; a file that is no picture shows none (Stylize then says why)."""
        try:
            return load_image(Path(photo), config.max_pixels).rgb if photo else None
        except StylenormError:
            return None

    def on_paint(photo, painting, iterations, scale, strength, preserve, max_size, stop,
                 progress=gr.Progress(track_tqdm=True)):
        stop.clear()
        try:
            options = StylizeOptions(iterations=int(iterations), style_scale=float(scale), strength=float(strength),
                                     preserve_color=bool(preserve), max_size=int(max_size) if max_size else None)
            result, path = paint_upload(photo, painting, options, config, stop)
        except Cancelled as exc:
            return None, None, f"Stopped: {exc}."
        except StylenormError as exc:
            message = str(exc)
            for upload in (photo, painting):
                message = message.replace(str(upload), Path(upload).name) if upload else message
            raise gr.Error(message, print_exception=False) from None
        return result, str(path), f"Painted after **{Path(painting).name}**: {result.shape[1]}x{result.shape[0]} px."

    def on_add_style(painting, name, steps, progress=gr.Progress(track_tqdm=True)):
        try:
            path = add_painting_style(painting, name, steps, config)
        except StylenormError as exc:
            message = str(exc).replace(str(painting), Path(painting).name) if painting else str(exc)
            raise gr.Error(message, print_exception=False) from None
        choices = style_names()
        return (f"Added the style **{name.strip()}** ({path.name}): pick it in the Stylize and Video tabs.",
                gr.update(choices=choices), gr.update(choices=choices))

    def on_clip(clip, style, stabilize, strength, stop, progress=gr.Progress(track_tqdm=True)):
        stop.clear()
        try:
            options = StylizeOptions(stabilize=stabilize, strength=float(strength))
            path = stylize_clip(clip, style, options, config, stop)
        except Cancelled as exc:
            return None, None, f"Stopped: {exc}."
        except StylenormError as exc:
            message = str(exc).replace(str(clip), Path(clip).name) if clip else str(exc)
            raise gr.Error(message, print_exception=False) from None
        return str(path), str(path), f"Stylized with **{style}**: {Path(path).name}."

    def on_sample(labels, num_samples, sampler, steps, guidance, seed, progress=gr.Progress(track_tqdm=True)):
        try:
            options = SampleOptions(num_samples=int(num_samples), sampler=sampler, steps=int(steps),
                                    labels=(labels or "").strip() or None, guidance=float(guidance), seed=int(seed))
            grid, path, caption = sample_grid(options, config)
        except StylenormError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return grid, str(path), caption

    cards = model_cards()
    thumbnails = style_thumbnails(names, config)
    with gr.Blocks(title="stylenorm", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown("# stylenorm\nFast neural style transfer and a small diffusion model, on this computer.")
        with gr.Tab("Stylize"):
            gr.Markdown("Styles: " + ", ".join(f"`{n}`" for n in names), elem_id="style-list")
            with gr.Row():
                with gr.Column():
                    photo = gr.File(label="Photo: drop it here or click to pick one", file_count="single",
                                    type="filepath", elem_id="photo")
                    preview = gr.Image(label="Your photo", type="numpy", interactive=False, height=220,
                                       elem_id="photo-preview")
                    gr.Examples([[str(p)] for p in EXAMPLE_PHOTOS], inputs=[photo], label="Or try a demo photo",
                                elem_id="examples")
                    mode = gr.Radio(list(STYLE_MODES), value=STYLE_MODES[0], label="Style", elem_id="style-mode")
                    with gr.Group(visible=True) as one_style:
                        gallery = gr.Gallery(thumbnails, label="Click a style (the demo cat in each)", columns=5,
                                             rows=1, height=150, allow_preview=False, elem_id="style-gallery")
                        style = gr.Dropdown(names, value=names[0], label="Style", elem_id="style")
                    with gr.Group(visible=False) as blend:
                        sliders = [gr.Slider(0, 1, value=0, step=0.05, label=n, elem_id=f"blend-{n}") for n in names]
                    strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength (0 = the photo, 1 = full style)")
                    preserve = gr.Checkbox(False, label="Preserve the photo's colours")
                    scale = gr.Slider(0.25, 4, value=1, step=0.25, label="Style scale (brush-stroke size)")
                    max_size = gr.Slider(64, 4096, value=DEFAULT_MAX_SIZE, step=32, label="Maximum size (long side, px)",
                                         elem_id="max-size")
                    go = gr.Button("Stylize", variant="primary", elem_id="stylize")
                with gr.Column():
                    slider = gr.ImageSlider(label="Before / after", type="numpy", elem_id="before-after",
                                            buttons=["download", "fullscreen"])
                    info = gr.Markdown(elem_id="stylize-info")
                    download = gr.File(label="Download the stylized PNG", elem_id="download", interactive=False)
            photo.change(on_photo, photo, preview, queue=False)
            gallery.select(on_pick, None, style, queue=False)
            mode.change(lambda m: (gr.update(visible=m == STYLE_MODES[0]), gr.update(visible=m == STYLE_MODES[1])),
                        mode, [one_style, blend], queue=False)
            go.click(on_stylize, [photo, style, mode, strength, preserve, scale, max_size, *sliders],
                     [slider, download, info], concurrency_id="quick")
        with gr.Tab("Any painting"):
            gr.Markdown("Paint a photo after any painting: the picture itself is optimized against the painting "
                        "(Gatys et al.), minutes on a CPU. The bar shows the loss evaluations left and the time.")
            with gr.Row():
                with gr.Column():
                    paint_photo = gr.File(label="Photo", file_count="single", type="filepath", elem_id="paint-photo")
                    painting = gr.File(label="Painting (any image)", file_count="single", type="filepath",
                                       elem_id="painting")
                    iterations = gr.Slider(1, 500, value=OPTIMIZE_ITERATIONS, step=1,
                                           label="Loss evaluations (more: closer to the painting, slower)",
                                           elem_id="iterations")
                    paint_scale = gr.Slider(0.25, 4, value=1, step=0.25, label="Style scale (motif size)")
                    paint_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    paint_preserve = gr.Checkbox(False, label="Preserve the photo's colours")
                    paint_size = gr.Slider(64, 1024, value=512, step=32, label="Maximum size (long side, px)",
                                           elem_id="paint-size")
                    with gr.Row():
                        paint = gr.Button("Paint", variant="primary", elem_id="paint")
                        cancel_paint = gr.Button("Cancel", elem_id="cancel-paint")
                with gr.Column():
                    painted = gr.Image(label="Result", type="numpy", interactive=False, elem_id="painted")
                    paint_info = gr.Markdown(elem_id="paint-info")
                    paint_file = gr.File(label="Download the PNG", interactive=False, elem_id="paint-file")
            # one stop flag per browser session, set by Cancel (outside the queue, so it is not held up)
            paint_stop = gr.State(threading.Event)
            paint.click(on_paint, [paint_photo, painting, iterations, paint_scale, paint_strength, paint_preserve,
                                   paint_size, paint_stop], [painted, paint_file, paint_info], concurrency_id="long")
            cancel_paint.click(lambda stop: stop.set(), paint_stop, None, queue=False)
            with gr.Accordion("Add this painting as a style (minutes: only its γ/β are trained)", open=False):
                with gr.Row():
                    new_name = gr.Textbox("", label="Name of the new style", elem_id="new-style-name")
                    new_steps = gr.Slider(1, 1000, value=ADD_STYLE_STEPS, step=1, label="Training steps",
                                          elem_id="new-style-steps")
                add = gr.Button("Add as a style", elem_id="add-style")
                add_info = gr.Markdown(elem_id="add-style-info")
        with gr.Tab("Video"):
            gr.Markdown("Stylize a short clip: its sound and timing are kept, and the frames are stabilised along "
                        "the optical flow (`stylenorm stylize clip.mp4`).")
            with gr.Row():
                with gr.Column():
                    clip = gr.File(label="Clip (MP4, MOV, MKV, WebM, AVI)", file_count="single", type="filepath",
                                   elem_id="clip")
                    clip_style = gr.Dropdown(names, value=names[0], label="Style", elem_id="clip-style")
                    stabilize = gr.Radio(list(STABILIZE_MODES), value=DEFAULT_STABILIZE,
                                         label="Stabilize (flow: least flicker)", elem_id="stabilize")
                    clip_strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength")
                    with gr.Row():
                        stylize_clip_button = gr.Button("Stylize the clip", variant="primary", elem_id="stylize-clip")
                        cancel_clip = gr.Button("Cancel", elem_id="cancel-clip")
                with gr.Column():
                    clip_out = gr.Video(label="Result (with its sound)", interactive=False, elem_id="clip-out")
                    clip_info = gr.Markdown(elem_id="clip-info")
                    clip_file = gr.File(label="Download the clip", interactive=False, elem_id="clip-file")
            # the new style joins both style lists; it trains in the long queue, so photos go on meanwhile
            add.click(on_add_style, [painting, new_name, new_steps], [add_info, style, clip_style],
                      concurrency_id="long")
            clip_stop = gr.State(threading.Event)
            stylize_clip_button.click(on_clip, [clip, clip_style, stabilize, clip_strength, clip_stop],
                                      [clip_out, clip_file, clip_info], concurrency_id="long")
            cancel_clip.click(lambda stop: stop.set(), clip_stop, None, queue=False)
        with gr.Tab("Diffusion samples"):
            with gr.Row():
                with gr.Column():
                    labels = gr.Textbox("", label="Class labels (e.g. 7 or 0,1,2; empty: every class in turn)",
                                        elem_id="labels")
                    count = gr.Slider(1, 100, value=20, step=1, label="Samples", elem_id="samples")
                    sampler = gr.Dropdown(list(SAMPLERS), value=DEFAULT_SAMPLER, label="Sampler")
                    steps = gr.Slider(1, 100, value=DEFAULT_STEPS, step=1, label="Steps (ddpm uses every training step)",
                                      elem_id="steps")
                    guidance = gr.Slider(0, 6, value=DEFAULT_GUIDANCE[DEFAULT_SAMPLER], step=0.1,
                                         label="Guidance (1 = none)")
                    seed = gr.Number(0, precision=0, label="Seed")
                    draw = gr.Button("Sample", variant="primary", elem_id="sample")
                with gr.Column():
                    gr.Markdown("**Samples**")
                    # no label badge on the picture: it covered the top-left digit
                    grid = gr.Image(show_label=False, type="numpy", elem_id="grid", buttons=["download", "fullscreen"])
                    caption = gr.Markdown(elem_id="grid-caption")
                    grid_file = gr.File(label="Download the grid PNG", interactive=False, elem_id="grid-file")
            sampler.change(lambda s: DEFAULT_GUIDANCE[s], sampler, guidance)
            draw.click(on_sample, [labels, count, sampler, steps, guidance, seed], [grid, grid_file, caption],
                       concurrency_id="quick")
        with gr.Tab("Model cards"):
            gr.Gallery(thumbnails, label="The styles (the demo cat in each)", columns=8, rows=1, height=170,
                       allow_preview=False, elem_id="cards-gallery")
            gr.Markdown(_cards_markdown(cards))
            for name, card in cards:
                with gr.Accordion(name, open=False):
                    gr.JSON(json.loads(json.dumps(card, default=str)))
    # One request at a time per queue (the networks use every core; a second browser waits with its position
    # shown), and two queues: a minutes-long painting or clip never holds up a photo or a digit grid
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


@dataclass
class Server:
    demo: object
    url: str
    config: ServeConfig
    _old_temp: str | None

    def block(self) -> None:
        self.demo.block_thread()

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            shutil.rmtree(self.config.workdir, ignore_errors=True)
            if self._old_temp is None:
                os.environ.pop("GRADIO_TEMP_DIR", None)
            else:
                os.environ["GRADIO_TEMP_DIR"] = self._old_temp


def launch(config: ServeConfig, host: str = "127.0.0.1", port: int = 7860, block: bool = False) -> Server:
    """Build and start the page in a background thread; `Server.close` stops it and removes its files."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    old_temp = os.environ.get("GRADIO_TEMP_DIR")
    # Gradio caches uploads and returned files in GRADIO_TEMP_DIR, inside our folder, which close()
    # removes. Set before gradio's first import: some of its modules read it once, at import.
    os.environ["GRADIO_TEMP_DIR"] = str(config.workdir / "gradio")
    try:
        gr = require_gradio()
        demo = build_app(config)
        theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"])
        try:
            _, url, _ = demo.launch(server_name=host, server_port=port, inbrowser=False, share=False, quiet=True,
                                    prevent_thread_lock=True, max_file_size=MAX_UPLOAD, ssr_mode=False,
                                    allowed_paths=[str(config.workdir), str(DEMO_DIR)], theme=theme, footer_links=[])
        except OSError as exc:
            raise StylenormError(f"cannot serve on {host}:{port} ({exc}); pass another --port or --host") from None
    except BaseException:
        shutil.rmtree(config.workdir, ignore_errors=True)
        if old_temp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_temp
        raise
    server = Server(demo, url, config, old_temp)
    if block:
        try:
            server.block()
        finally:
            server.close()
    return server
