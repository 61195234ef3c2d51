"""Render the training set and train the Walkout detector: ``python -m models.train --help``.

The same as ``walkout models train``; the code lives in ``edge.vision.training`` so that the
installed ``walkout`` command has it too.
"""

from __future__ import annotations

import typer

from edge.vision_cli import models_train_command

if __name__ == "__main__":
    typer.run(models_train_command)
