"""``retina studio``: start the local web editor."""

from __future__ import annotations

from pathlib import Path

import typer


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    layout_ckpt: Path | None = typer.Option(None, "--layout-ckpt", help="Layout checkpoint (file or run folder); "
                                            "default: the procedural prior."),
    render_ckpt: Path | None = typer.Option(None, "--render-ckpt", help="Render checkpoint; default: the "
                                            "procedural renderer (a labelled preview)."),
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
    device_ = resolve_device(device)
    app = build_app(load_layout_model(layout_ckpt, device_), open_renderer(render_ckpt, device_), device_)
    print(f"retina studio on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        launch(app, host=host, port=port)
    except OSError as error:
        raise RetinaError(f"--port {port}: cannot serve there ({error}); choose another --port") from None
