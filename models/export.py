"""Export the Walkout detector to ONNX: ``python -m models.export --help`` (= ``walkout models export``)."""

from __future__ import annotations

import typer

from edge.vision_cli import models_export_command

if __name__ == "__main__":
    typer.run(models_export_command)
