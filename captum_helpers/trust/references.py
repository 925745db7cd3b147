"""Reference maps: what a method must beat before its map means anything. None of them looks at
the model: a map of random values (drawn from a seed), a constant map, and the photo's edges
(Adebayo et al.'s edge detector)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

REFERENCES = ("Random", "Constant", "Edge detector")


def random_map(inputs: torch.Tensor, seed: int) -> torch.Tensor:
    """A map of standard normal values of the inputs' shape, drawn from ``seed``: it knows
    nothing of the model or the photo."""
    return torch.randn(inputs.shape, generator=torch.Generator().manual_seed(seed))


def constant_map(inputs: torch.Tensor) -> torch.Tensor:
    """The same value everywhere: a map that ranks no pixel above another."""
    return torch.ones(inputs.shape)


def edge_map(inputs: torch.Tensor) -> torch.Tensor:
    """Adebayo et al.'s edge-detector control: the Sobel gradient magnitude of each image's
    channel mean, as a (B, C, H, W) map (the same in every channel). It looks at no model."""
    gray = inputs.detach().float().mean(dim=1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    edges = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"),
                     torch.stack([sobel, sobel.T]).unsqueeze(1))
    return edges.pow(2).sum(dim=1, keepdim=True).sqrt().expand_as(inputs).contiguous()


def reference_maps(inputs: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The three references for a batch of inputs, the random one drawn from ``seed``."""
    return {"Random": random_map(inputs, seed), "Constant": constant_map(inputs),
            "Edge detector": edge_map(inputs)}
