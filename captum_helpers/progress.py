"""A progress bar for attribution methods that have none of their own (introduced in 02)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from .language import say


@contextmanager
def progress(model: torch.nn.Module, total: int, desc: str | None = None) -> Iterator[tqdm]:
    """Show a bar that advances by every image that passes through ``model.forward``.

    ``desc`` defaults to "images through the model" (in Chinese in the Chinese edition).

    Integrated Gradients has no ``show_progress`` argument (Occlusion has); wrap its
    ``.attribute(...)`` call in ``with progress(model, total=n_steps):`` instead.
    """
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if desc is None:
        desc = say("images through the model", "张图像经过模型")
    bar = tqdm(total=total, desc=desc, unit=say("img", "张"))

    def tick(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        bar.update(inputs[0].shape[0])

    handle = model.register_forward_hook(tick)
    try:
        yield bar
    finally:
        handle.remove()
        bar.close()
