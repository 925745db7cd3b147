"""Making the attribution calls cheap on a laptop CPU without changing their answer.

The attribution notebooks keep the walkthrough's parameters and add only settings a
learner can see in the cell:

* ``model = fast_model(model)`` once, after loading: eval mode and the ``channels_last``
  memory format, which oneDNN's CPU convolutions run faster (forward and backward);
* ``internal_batch_size=INTEGRATED_GRADIENTS_BATCH`` in ``IntegratedGradients.attribute``:
  the 200 steps go through the network a few at a time instead of all at once, so peak
  memory follows the batch, not ``n_steps``;
* ``perturbations_per_eval=OCCLUSION_BATCH`` in ``Occlusion.attribute``: occluded copies of
  the image go through the network in batches instead of one forward pass each.

None of these changes what is computed: the attributions agree with the walkthrough's
calls to float32 rounding (``bench/attributions.py`` measures and checks this). On an idle
2-core machine they make Integrated Gradients about 1.5x faster in a fifth of the memory and
Occlusion about 1.3x faster (it is then at the machine's float32 bound); on a busy machine,
where the walkthrough's one-image-at-a-time occlusion slows down 5x, batching matters more.

``torch.autocast("cpu", dtype=torch.bfloat16)`` around a call is an optional fast mode
that does change the numbers slightly; :func:`bf16_supported` says whether the CPU has
the instructions that make it pay.
"""
from __future__ import annotations

import torch

# Chosen with bench/attributions.py on a 2-core CPU with ResNet18 (see bench/README.md).
# Integrated Gradients: 10 steps per pass (20 passes for n_steps=200). On 2 cores batches of
# 10 to 40 steps take the same time; memory grows with the batch (peak RSS of the whole
# process 1.13 GB at 10, 1.4 GB at 20, 1.5 GB at 25, 2.0 GB at 40, 5.1 GB with all 200 at once).
INTEGRATED_GRADIENTS_BATCH = 10
# Occlusion: 27 occluded images per forward pass, i.e. one row of the 27 x 27 window positions
# (27 passes for the walkthrough's 729). 16 to 48 were fastest (16 s); 64 took 20 s, 81 20-30 s.
OCCLUSION_BATCH = 27


def fast_model(model: torch.nn.Module) -> torch.nn.Module:
    """Put ``model`` in eval mode and the ``channels_last`` memory format, in place; return it.

    Only the memory layout of the weights changes, not their values, so every output,
    gradient and layer (e.g. ``model.layer3[1].conv2`` for GradCAM) stays the same up to
    float32 rounding (rarely, rounding flips a ReLU whose input is zero up to rounding, which
    moves a gradient map by ~1e-4 of its maximum). Inputs may stay contiguous.
    """
    return model.eval().to(memory_format=torch.channels_last)


def is_fast(model: torch.nn.Module) -> bool:
    """True if every 4-d weight of ``model`` is in ``channels_last`` format and it is in eval mode."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    return (
        not model.training
        and bool(weights)
        and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    )


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), so that
    ``torch.autocast("cpu", dtype=torch.bfloat16)`` is faster than float32 rather than slower."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))
    except RuntimeError:
        return False
