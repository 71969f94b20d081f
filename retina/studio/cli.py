"""``retina studio``: start the local web editor."""

from __future__ import annotations

import typer


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    layout_ckpt: str | None = typer.Option(None, "--layout", help="shipped (default: the packaged layout GAN), "
                                           "procedural (the hand-written prior) or a layout checkpoint."),
    render_ckpt: str | None = typer.Option(None, "--renderer", help="shipped (default: the packaged renderer), "
                                           "procedural (the labelled preview renderer) or a render checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Start retina studio: sample a layout, edit lesions with a brush or by kind, re-render, download."""
    from retina.common.device import resolve_device
    from retina.common.errors import RetinaError
    from retina.layout.model import load_layout_model
    from retina.render.infer import open_renderer
    from retina.studio.app import build_app, launch

    if not 0 < port < 65536:
        raise RetinaError(f"--port {port}: choose a port from 1 to 65535")
    from retina.shipped import resolve_model

    device_ = resolve_device(device)
    layout_path = resolve_model(layout_ckpt, "layout", "--layout")
    render_path = resolve_model(render_ckpt, "render", "--renderer")
    app = build_app(load_layout_model(layout_path, device_), open_renderer(render_path, device_), device_)
    print(f"retina studio on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        launch(app, host=host, port=port)
    except OSError as error:
        raise RetinaError(f"--port {port}: cannot serve there ({error}); choose another --port") from None
