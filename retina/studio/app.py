"""``retina studio``: a local web app to make a retina, edit its lesions and render it (Gradio).

Choose a grade and a seed and sample a layout (the procedural prior or a layout checkpoint); the mask overlay and
the rendered photograph stand side by side. Edit the lesions: add N of a kind, remove all of a kind, scale or
move them, or paint and erase with a brush; a banner says what the grade rule makes of the edited layout. Re-render
(same seed: only the edited places change) and download the photograph, the masks (a zip in the canonical
format) and a metadata JSON.

The server binds to 127.0.0.1 unless told otherwise, and only accepts mask uploads that are images within
``MAX_UPLOAD_BYTES`` (read by the same reader, with the same decompression-bomb limit, as every other command).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from retina.common.schema import GRADE_NAMES, LESION_CHANNELS
from retina.studio.session import MASK_UPLOAD_TYPES, MAX_UPLOAD_BYTES, SIZES, StudioSession

PAINTABLE = (*LESION_CHANNELS, "od", "vessels")


def _gradio() -> Any:
    # Gradio phones home for analytics and version checks unless told not to; the studio is a local tool.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        from retina.common.errors import RetinaError

        raise RetinaError("retina studio needs Gradio: pip install -e '.[studio]' (or '.[dev]')") from None
    return gradio


def _stroke(editor_value: Any, size: tuple[int, int]) -> np.ndarray:
    """The brush strokes of a Gradio ImageEditor value as ``bool (H, W)`` at the layout's size."""
    import cv2

    layers = [] if not editor_value else [np.asarray(layer) for layer in editor_value.get("layers") or []]
    stroke = np.zeros(size, bool)
    for layer in layers:
        painted = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[-1] == 4 else layer.reshape(
            layer.shape[0], layer.shape[1], -1).max(-1) > 0
        if painted.shape != size:
            painted = cv2.resize(painted.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0
        stroke |= painted
    return stroke


def build_app(layout_model: Any, renderer: Any, device: Any = "cpu", downloads: str | Path | None = None) -> Any:
    """The Gradio Blocks app around a layout model and a renderer (shared by all browser sessions)."""
    import torch

    from retina.common.errors import RetinaError

    gr = _gradio()
    device = torch.device(device)
    downloads = Path(downloads or tempfile.mkdtemp(prefix="retina-studio-"))

    def guarded(action):
        """Run a callback; a RetinaError becomes the toast the user sees instead of a stack trace."""

        def run(session: StudioSession | None, *args: Any) -> tuple:
            session = session or StudioSession(layout_model, renderer, device)
            try:
                action(session, *args)
            except RetinaError as error:
                raise gr.Error(str(error)) from None
            return view(session)

        return run

    def view(session: StudioSession) -> tuple:
        if session.layout is None:
            return session, None, None, None, session.banner(), None
        overlay = session.overlay()
        editor = {"background": overlay, "layers": [], "composite": overlay}
        return session, overlay, session._photo(), editor, session.banner(), None

    def sample(session, grade, seed, size):
        session.sample(int(grade), int(seed), int(size))

    def upload(session, channel, file):
        if file is None:
            raise RetinaError("choose a mask image to upload")
        session.upload(channel, file)

    def export(session):
        return session.export(downloads / f"{id(session):x}")

    with gr.Blocks(title="retina studio") as app:
        state = gr.State(None)
        gr.Markdown("# retina studio\nMake a retina, edit its lesions, render it. Synthetic images for research "
                    "and teaching, **not for diagnosis**.")
        with gr.Row():
            grade = gr.Radio([str(g) for g in range(5)], value="3", label="Grade (ICDR)", elem_id="grade",
                             info=" · ".join(f"{g}: {name}" for g, name in enumerate(GRADE_NAMES)))
            seed = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id="seed")
            size = gr.Radio([str(s) for s in SIZES], value="256", label="Size (px)", elem_id="size")
            sample_button = gr.Button("Sample layout", variant="primary", elem_id="sample")
        banner = gr.Markdown("Sample a layout to start.", elem_id="banner")
        with gr.Row():
            overlay = gr.Image(label="Masks over the photograph", format="png", interactive=False, height=384,
                               elem_id="overlay")
            photo = gr.Image(label="Rendered photograph", format="png", interactive=False, height=384, elem_id="photo")
        with gr.Row():
            channel = gr.Radio(list(PAINTABLE), value="he", label="Lesion channel", elem_id="channel")
        with gr.Row():
            count = gr.Number(10, precision=0, minimum=0, label="N", elem_id="count")
            add_button = gr.Button("Add N", elem_id="add")
            remove_button = gr.Button("Remove all of this kind", elem_id="remove")
            factor = gr.Number(2.0, minimum=0.1, label="Scale factor", elem_id="factor")
            scale_button = gr.Button("Scale", elem_id="scale")
            dx = gr.Number(0, precision=0, label="dx", elem_id="dx")
            dy = gr.Number(0, precision=0, label="dy", elem_id="dy")
            move_button = gr.Button("Move", elem_id="move")
        with gr.Row():
            brush = gr.ImageEditor(label="Brush: paint over the overlay, then apply to the chosen channel",
                                   sources=(), type="numpy", format="png", layers=False, elem_id="brush",
                                   brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"))
            with gr.Column():
                paint_button = gr.Button("Apply brush: paint", elem_id="paint")
                erase_button = gr.Button("Apply brush: erase", elem_id="erase")
                mask_file = gr.File(label=f"Or upload a mask for the channel (image, at most "
                                          f"{MAX_UPLOAD_BYTES // 2**20} MB)", file_types=list(MASK_UPLOAD_TYPES),
                                    elem_id="upload")
                grade_button = gr.Button("Set the stated grade to the chosen grade", elem_id="set-grade")
        with gr.Row():
            render_button = gr.Button("Re-render", variant="primary", elem_id="render")
            export_button = gr.Button("Prepare downloads", elem_id="export")
        files = gr.File(label="Downloads: photograph, masks (zip, canonical format), metadata", file_count="multiple",
                        interactive=False, elem_id="downloads")

        outputs = [state, overlay, photo, brush, banner, files]
        sample_button.click(guarded(sample), [state, grade, seed, size], outputs)
        add_button.click(guarded(lambda s, c, n: s.add(c, int(n))), [state, channel, count], outputs)
        remove_button.click(guarded(lambda s, c: s.remove(c)), [state, channel], outputs)
        scale_button.click(guarded(lambda s, c, f: s.scale(c, float(f))), [state, channel, factor], outputs)
        move_button.click(guarded(lambda s, c, x, y: s.move(c, int(x), int(y))), [state, channel, dx, dy], outputs)
        paint_button.click(guarded(lambda s, c, e: s.paint(c, _stroke(e, s._require().size))),
                           [state, channel, brush], outputs)
        erase_button.click(guarded(lambda s, c, e: s.paint(c, _stroke(e, s._require().size), erase=True)),
                           [state, channel, brush], outputs)
        mask_file.upload(guarded(upload), [state, channel, mask_file], outputs)
        grade_button.click(guarded(lambda s, g: s.set_grade(int(g))), [state, grade], outputs)
        render_button.click(guarded(lambda s: s.render()), [state], outputs)

        def prepare(session):
            session = session or StudioSession(layout_model, renderer, device)
            try:
                paths = export(session)
            except RetinaError as error:
                raise gr.Error(str(error)) from None
            return [str(p) for p in paths]

        export_button.click(prepare, [state], [files])
    app.downloads = downloads
    return app


def launch(app: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    gr = _gradio()
    theme = gr.themes.Base(font=["sans-serif"], font_mono=["monospace"])  # no web fonts: works offline
    return app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES,
                      allowed_paths=[str(app.downloads)], prevent_thread_lock=not block, quiet=True, theme=theme,
                      footer_links=[], ssr_mode=False)
