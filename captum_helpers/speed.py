"""Making the attribution calls cheap on a laptop CPU without changing their answer.

The settings, stated here once (the notebooks, README and bench/README.md quote them):

* ``model = fast_model(model)`` once, after loading: eval mode and the ``channels_last``
  memory format, which oneDNN's CPU convolutions run faster (forward and backward);
* ``internal_batch_size=INTEGRATED_GRADIENTS_BATCH`` (10) in ``IntegratedGradients.attribute``:
  the 200 steps go through the network 10 at a time (20 passes) instead of all at once, so
  peak memory follows the batch, not ``n_steps``;
* ``perturbations_per_eval=OCCLUSION_BATCH`` (28) in ``Occlusion.attribute``: the occluded
  copies go through the network 28 at a time instead of one forward pass each. The
  walkthrough's window (3, 15, 15) with strides (3, 8, 8) takes 28 x 28 positions
  (:func:`occlusion_windows`), so the 784 copies go in 28 full batches of 28.

None of these changes what is computed: the attributions agree with the walkthrough's calls
to float32 rounding. ``bench/attributions.py`` checks that and measures time and memory
against the walkthrough's calls in one run; bench/README.md gives the run its figures come from.

``torch.autocast("cpu", dtype=torch.bfloat16)`` around a call is an optional fast mode
that does change the numbers slightly; :func:`bf16_supported` says whether the CPU has
the instructions that make it pay.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# Both chosen with bench/attributions.py on a 2-core CPU with ResNet18 (bench/README.md,
# "Why these settings"): batches of 10 to 40 steps took the same time there, and memory grows
# with the batch; occlusion batches of 16 to 32 were fastest, 64 and more slower.
INTEGRATED_GRADIENTS_BATCH = 10
OCCLUSION_BATCH = 28


def occlusion_windows(input_shape: Sequence[int], sliding_window_shapes: Sequence[int],
                      strides: int | Sequence[int]) -> int:
    """How many occluded copies captum's ``Occlusion.attribute`` runs through the model.

    Along each dimension the window starts at 0, stride, 2 * stride, ... until a window
    reaches the far edge (where it does not fit, captum cuts it off there), so there are
    ceil((size - window) / stride) + 1 starts; the copies are every combination of starts.
    One more forward pass, of the unoccluded input, comes on top. ``input_shape`` is one
    example's shape: (3, 224, 224), window (3, 15, 15), strides (3, 8, 8) -> 28 * 28 = 784.
    Introduced in notebook 03.
    """
    if isinstance(strides, int):
        strides = (strides,) * len(input_shape)
    if not len(input_shape) == len(sliding_window_shapes) == len(strides):
        raise ValueError(f"input_shape {tuple(input_shape)}, sliding_window_shapes "
                         f"{tuple(sliding_window_shapes)} and strides {tuple(strides)} "
                         "need one entry per dimension")
    if any(w > size for size, w in zip(input_shape, sliding_window_shapes)):
        raise ValueError(f"sliding_window_shapes {tuple(sliding_window_shapes)} "
                         f"exceeds input_shape {tuple(input_shape)}")
    return math.prod(math.ceil((size - w) / s) + 1
                     for size, w, s in zip(input_shape, sliding_window_shapes, strides))


def passes_per_example(method: str, arguments: dict, shape: tuple[int, ...],
                       model: torch.nn.Module | None = None) -> int:
    """Model passes one example costs in Captum Insights with these settings, counted as
    captum loops (a backward pass counts as two). Used by the explorer's work budget. Given the
    ``model``, Occlusion counts what the explorer computes, IncrementalOcclusion (notebook 03):
    its share of the convolutions' work, in full passes, rounded up."""
    if method == "Integrated Gradients":
        return 3 * arguments["n_steps"]  # n_steps scaled copies, forward and backward
    if method == "Occlusion":  # each window position, and the photo itself
        window, strides = arguments["sliding_window_shapes"], arguments["strides"]
        passes = occlusion_windows(shape, window, strides) + 1
        if model is None:
            return passes
        from .incremental import IncrementalOcclusion

        return math.ceil(passes * IncrementalOcclusion(model).share(shape, window, strides))
    if method == "Feature Ablation":
        return math.prod(shape) + 1  # without a feature mask each input value is ablated alone
    return 6 if method == "DeepLift" else 3  # DeepLift runs input and baseline together


def fast_model(model: torch.nn.Module) -> torch.nn.Module:
    """Put ``model`` in eval mode and the ``channels_last`` memory format, in place; return it.

    Only the memory layout of the weights changes, not their values, so every output,
    gradient and layer (e.g. ``model.layer3[1].conv2`` for GradCAM) stays the same up to
    float32 rounding (rarely, rounding flips a ReLU whose input is zero up to rounding, which
    moves a gradient map by ~1e-4 of its maximum). Inputs may stay contiguous.
    """
    return model.eval().to(memory_format=torch.channels_last)


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), so that
    ``torch.autocast("cpu", dtype=torch.bfloat16)`` is faster than float32 rather than slower."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))
    except RuntimeError:
        return False
