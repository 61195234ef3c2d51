"""Typer commands of the vision stack; the lead registers them on the ``walkout`` app:

``walkout models train`` (models_train_command), ``walkout models export`` (models_export_command),
``walkout edge-vision`` (vision_command).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edge.vision._ultra import DEFAULT_ONNX, DEFAULT_WEIGHTS

console = Console()
logger = logging.getLogger(__name__)
DEMO_STORE = Path(__file__).resolve().parents[1] / "sim_data" / "stores" / "demo.yaml"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def models_train_command(
    data_dir: Annotated[Path, typer.Option(help="where the rendered training set goes")] = Path(
        "var/models-data"
    ),
    images: Annotated[int, typer.Option(help="training images to render")] = 800,
    val_images: Annotated[int, typer.Option(help="held-out validation images (another seed)")] = 120,
    epochs: Annotated[int, typer.Option(help="epochs (fewer if --minutes runs out first)")] = 15,
    imgsz: Annotated[int, typer.Option(help="training image size, px")] = 320,
    minutes: Annotated[float, typer.Option(help="wall-time bound of the training")] = 20.0,
    weights: Annotated[Path, typer.Option(help="where the trained weights go")] = DEFAULT_WEIGHTS,
    seed: Annotated[int, typer.Option(help="seed of the rendered set")] = 5,
    skip_render: Annotated[bool, typer.Option(help="reuse data-dir as it is")] = False,
) -> None:
    """Render a labelled set from the simulator and train YOLO11n on the CPU (no download)."""
    from edge.vision.training import make_dataset, train

    with _progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        data = data_dir / "data.yaml"
        if not skip_render or not data.exists():
            data = make_dataset(data_dir, images, val_images, seed, progress=progress)
        metrics = train(data, epochs=epochs, imgsz=imgsz, out=weights, progress=progress, time_h=minutes / 60)
    console.print(f"weights: {weights} ({weights.stat().st_size / 1e6:.1f} MB)")
    console.print_json(json.dumps(metrics))


def models_export_command(
    weights: Annotated[Path, typer.Option(help="the .pt weights")] = DEFAULT_WEIGHTS,
    out: Annotated[Path, typer.Option(help="the .onnx file to write")] = DEFAULT_ONNX,
    imgsz: Annotated[int, typer.Option(help="export size (the input stays dynamic)")] = 640,
) -> None:
    """Export the detector to ONNX (for the onnxruntime backend)."""
    from edge.vision.training import export_onnx

    path = export_onnx(weights, out, imgsz=imgsz)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def vision_command(
    config: Annotated[Path | None, typer.Option(help="camera node YAML (docs/VISION.md)")] = None,
    source: Annotated[
        str | None, typer.Option(help="without --config: USB index, URL, video file or image folder")
    ] = None,
    camera: Annotated[
        str, typer.Option(help="without --config: camera id in the store YAML")
    ] = "cam-ceiling",
    store: Annotated[Path, typer.Option(help="without --config: the store layout")] = DEMO_STORE,
    broker: Annotated[str | None, typer.Option(help="MQTT broker URL (overrides the config)")] = None,
    backend: Annotated[str | None, typer.Option(help="pytorch or onnx (overrides the config)")] = None,
    realtime: Annotated[
        bool, typer.Option(help="without --config: pace a video file at its frame rate")
    ] = True,
    quiet: Annotated[bool, typer.Option(help="do not print every published frame")] = False,
) -> None:
    """Run the camera node: frames -> YOLO + ByteTrack -> floor tracks and item detections over MQTT."""
    from edge.mqtt import parse_broker_url
    from edge.publisher import Publisher
    from edge.vision.config import VisionConfig, VisionConfigError, load_vision_config
    from edge.vision.node import node_of, run_camera_pipeline
    from edge.vision.pipeline import FrameResult

    try:
        if config is not None:
            cfg = load_vision_config(config)
        elif source is not None:
            cfg = VisionConfig(
                store=store,
                cameras=[
                    {
                        "camera_id": camera,
                        "source": source,  # type: ignore[list-item]
                        "realtime": realtime,
                    }
                ],
            )
        else:
            raise VisionConfigError(
                "pass --config FILE, or --source (a video file, image folder, URL or USB index)"
            )
        updates: dict[str, Any] = {}
        if broker:
            updates["broker"] = broker
        if backend:
            updates["backend"] = backend
        cfg = cfg.model_validate({**cfg.model_dump(), **updates}) if updates else cfg
        nodes = sorted({node_of(c, cfg) for c in cfg.cameras})
    except (VisionConfigError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    publisher = Publisher(
        parse_broker_url(cfg.broker),
        cfg.layout().store_id,
        # One client id per store and node: two stores (or runs) on one broker never take over each other.
        f"{cfg.prefix}-vision-{cfg.layout().store_id}-{nodes[0]}",
        status_nodes=nodes,
        prefix=cfg.prefix,
    )
    try:
        publisher.connect()
    except ConnectionError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(camera_id: str, result: FrameResult) -> None:
        if quiet:
            return
        tracks = " ".join(f"{t.track_id}@({t.x_m:.2f},{t.y_m:.2f})" for t in result.tracks) or "-"
        items = " ".join(f"{d.label}{'→' + d.track_id if d.track_id else ''}" for d in result.items)
        console.print(f"{result.ts:.2f} {camera_id}: {tracks} {items}")

    console.print(f"camera node {', '.join(nodes)} → {cfg.broker} ({cfg.backend}, {cfg.imgsz} px)")
    try:
        counts = run_camera_pipeline(cfg, publisher, stop, on_result=show)
    except Exception as exc:  # a camera that never opened: say so plainly
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        publisher.close()
    console.print(
        f"done: {counts['frames']} frames, {counts['messages']} messages, "
        f"{counts.get('refused', 0)} refused, {counts.get('dropped', 0)} points dropped"
    )
