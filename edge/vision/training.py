"""Make the Walkout detector: render a labelled set, train YOLO11n from its YAML on the CPU, export ONNX.

No weights can be downloaded here, so the model starts from random weights (``yolo11n.yaml``, never
a hub ``.pt``) and learns from frames the simulator renders (sim_data.render). The scripts in
``models/`` and ``walkout models train|export`` call these functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.vision._ultra import DEFAULT_ONNX, DEFAULT_WEIGHTS, MODELS_DIR, ultralytics

logger = logging.getLogger(__name__)

DEMO_STORE = Path(__file__).resolve().parents[2] / "sim_data" / "stores" / "demo.yaml"
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    report = progress
    return lambda done, total: report(stage, done, total)


def make_dataset(
    out_dir: str | Path,
    n_train: int = 800,
    n_val: int = 120,
    seed: int = 5,
    store: str | Path = DEMO_STORE,
    progress: Progress | None = None,
) -> Path:
    """Render train and held-out val splits (different seeds) and write ``data.yaml``; return its path."""
    from sim_data.render import CLASSES, render_training_set
    from store_server.domain.layout import load_layout

    out = Path(out_dir).resolve()
    layout = load_layout(store)
    for split, n, s in (("train", n_train, seed), ("val", n_val, seed + 1000)):
        if (out / split).exists():
            shutil.rmtree(out / split)
        render_training_set(out / split, n, s, layout, progress=_stage(progress, f"render {split}"))
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    data = out / "data.yaml"
    data.write_text(
        f"# Walkout rendered training set (sim_data.render), seed {seed}\npath: {out}\n"
        f"train: train/images\nval: val/images\nnames:\n{names}\n"
    )
    return data


def train(
    data_yaml: str | Path,
    epochs: int = 15,
    imgsz: int = 320,
    batch: int = 8,
    workers: int = 2,
    out: str | Path = DEFAULT_WEIGHTS,
    seed: int = 0,
    progress: Progress | None = None,
    time_h: float | None = None,
) -> dict[str, Any]:
    """Train YOLO11n from scratch on the CPU; copy the best weights to ``out``; return the metrics.

    ``time_h`` bounds the wall time (ultralytics stops after that many hours).
    """
    import torch

    model = ultralytics().YOLO("yolo11n.yaml")  # architecture only: random weights, nothing downloaded
    threads = os.cpu_count() or 1

    def all_cores(_trainer: Any) -> None:  # ultralytics leaves one core idle (cpu_count - 1 threads)
        torch.set_num_threads(threads)

    model.add_callback("on_pretrain_routine_end", all_cores)
    started = time.monotonic()
    if progress:

        def on_epoch(trainer: Any) -> None:
            progress("train", int(trainer.epoch) + 1, int(trainer.epochs))

        model.add_callback("on_train_epoch_end", on_epoch)
    with tempfile.TemporaryDirectory(prefix="walkout-train-") as tmp:
        extra: dict[str, Any] = {"time": time_h} if time_h else {}
        model.train(
            data=str(data_yaml),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            workers=workers,
            device="cpu",
            amp=False,
            plots=False,
            pretrained=False,
            project=tmp,
            name="run",
            exist_ok=True,
            seed=seed,
            deterministic=False,
            cache="ram",
            close_mosaic=2,
            flipud=0.0,
            scale=0.3,
            patience=100,
            verbose=False,
            # A short schedule from scratch: an optimizer step per batch (nbs = batch; the
            # default 64 would step every 8th batch), a higher AdamW rate, one warm-up epoch.
            nbs=batch,
            optimizer="AdamW",
            lr0=0.0015,
            lrf=0.1,
            warmup_epochs=1.0,
            **extra,
        )
        best = Path(tmp) / "run" / "weights" / "best.pt"
        if not best.exists():
            best = Path(tmp) / "run" / "weights" / "last.pt"
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, out)
    metrics = evaluate(out, data_yaml, imgsz=imgsz)
    metrics["train_minutes"] = round((time.monotonic() - started) / 60, 1)
    metrics["epochs"] = int(getattr(model.trainer, "epoch", epochs - 1)) + 1
    return metrics


def evaluate(weights: str | Path, data_yaml: str | Path, imgsz: int = 320) -> dict[str, Any]:
    """mAP50-95 / mAP50 on the data set's ``val`` split, overall and per class."""
    model = ultralytics().YOLO(str(weights), task="detect")
    with tempfile.TemporaryDirectory(prefix="walkout-val-") as tmp:
        res = model.val(
            data=str(data_yaml),
            imgsz=imgsz,
            batch=16,
            device="cpu",
            plots=False,
            project=tmp,
            name="val",
            verbose=False,
            workers=0,
        )
    names = res.names
    per_class = {names[int(c)]: round(float(res.box.maps[int(c)]), 3) for c in res.box.ap_class_index}
    return {
        "imgsz": imgsz,
        "map50_95": round(float(res.box.map), 3),
        "map50": round(float(res.box.map50), 3),
        "per_class_map50_95": per_class,
    }


def export_onnx(
    weights: str | Path = DEFAULT_WEIGHTS,
    out: str | Path = DEFAULT_ONNX,
    imgsz: int = 640,
    dynamic: bool = True,
) -> Path:
    """Export ONNX (opset chosen by ultralytics, no onnxslim) next to ``out``.

    ``dynamic`` keeps the input size free so one file serves 320 and 640 px.
    """
    model = ultralytics().YOLO(str(weights), task="detect")
    made = Path(
        model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=False, device="cpu", half=False)
    )
    out = Path(out)
    if made.resolve() != out.resolve():
        shutil.move(str(made), out)
    store_weights_fp16(out)
    return out


def store_weights_fp16(path: str | Path) -> None:
    """Halve an ONNX file by storing its float32 weights as float16, each followed by a Cast back.

    onnxruntime folds the casts when it loads the model, so inference still runs in float32 and the
    results equal the ``.pt`` (which ultralytics saves in float16 too). Keeps the committed weights
    under 12 MB in all.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) == 0:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), f"{init.name}__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def ensure_onnx(weights: str | Path = DEFAULT_WEIGHTS) -> Path:
    """The ONNX file beside ``weights``, exported once if missing (offline, a few seconds)."""
    onnx = Path(weights).with_suffix(".onnx")
    if not onnx.exists():
        logger.info("exporting %s to ONNX (once)", weights)
        export_onnx(weights, onnx)
    return onnx


__all__ = [
    "DEFAULT_ONNX",
    "DEFAULT_WEIGHTS",
    "MODELS_DIR",
    "ensure_onnx",
    "evaluate",
    "export_onnx",
    "make_dataset",
    "train",
]
