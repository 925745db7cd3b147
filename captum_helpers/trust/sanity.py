"""The randomization check (Adebayo et al., 2018) in its shortest form, as notebook 08 runs it.

A method explains each item with the trained model and with a model given random weights; the
randomized model's map is then compared, on the common grid, with the trained model's map and
with the photo's edges. A method whose maps depend on the weights scores low on the first (a
rank correlation near 0), and one that does not cannot: the edge detector, run through the same
check, scores 1 on both, since its map of the randomized model is the edge map itself. Whether a
method passes is then the paired rule's verdict against that row (``beats``, lower is better).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch

from .metrics import GRID, spearman, to_grid
from .references import edge_map

# explain(model, inputs, target) -> attributions of the inputs' shape, (1, C, H, W)
Explain = Callable[[torch.nn.Module, torch.Tensor, int], torch.Tensor]


class RandomizationCheck(NamedTuple):
    """Per item, in the items' order: the Spearman correlation of the randomized model's map
    with the trained model's map, and with the photo's edges (lower is better for both)."""
    like_trained: list[float]
    like_edges: list[float]


def randomization_check(explain: Explain, model: torch.nn.Module, randomized: torch.nn.Module,
                        inputs: Sequence[torch.Tensor], targets: Sequence[int],
                        size: int = GRID) -> RandomizationCheck:
    """Explain every input (a (1, C, H, W) tensor) for its target with ``model`` and with
    ``randomized``, and compare the randomized model's map, as |values| on a ``size`` x ``size``
    grid, with the trained model's map and with the input's edges (``edge_map``)."""
    if len(inputs) != len(targets):
        raise ValueError(f"one target per input: got {len(inputs)} inputs and "
                         f"{len(targets)} targets")
    like_trained, like_edges = [], []
    for x, target in zip(inputs, targets):
        after = to_grid(explain(randomized, x, target), size)
        like_trained.append(spearman(after, to_grid(explain(model, x, target), size)))
        like_edges.append(spearman(after, to_grid(edge_map(x), size)))
    return RandomizationCheck(like_trained, like_edges)


def random_method(seed: int) -> Explain:
    """A "method" that ignores the model, the photo and the target: every call returns a fresh
    map of standard normal values, drawn from one generator seeded with ``seed``, so that the
    trained and the randomized model get two independent draws."""
    generator = torch.Generator().manual_seed(seed)

    def explain(model: torch.nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
        return torch.randn(inputs.shape, generator=generator)

    return explain


def edge_method(model: torch.nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
    """The edge detector as a "method": the photo's edges, whatever the model and target."""
    return edge_map(inputs)
