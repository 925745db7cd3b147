"""A model whose right answer is known, and is not met by construction (notebook 07).

``TwoBoxes`` adds what a classifier sees in two disjoint boxes: f(x) = g(x_A) + h(x_B), where
g(x_A) is the classifier's logit on the photo with every pixel outside box A set to 0 (after
normalization: the mean colour) and h(x_B) the same for box B. So the score difference
f(x) - f(0) splits into a part from A, g(x_A) - g(0), and a part from B, h(x_B) - h(0), and
the right answer to "how much of it comes from A?" is A's part over the two parts
(``right_share``). A map answers the same question with its signed attribution inside A over
its signed attributions inside A and B (``answer_share``); ``split_error`` is how far that
answer is from the right one.

Both shares divide by the *sizes* of the two parts, |A's part| + |B's part|, not by their sum:
where both parts are positive the two are the same number, and where they nearly cancel (as
the two sums of a map of random values do about as often as not) the sum would send the
share anywhere on the number line. So every share lies in [-1, 1].
"""
from __future__ import annotations

import torch

# (top, bottom, left, right) in pixels of a 224 x 224 photo: A, a 64 x 64 square in the middle;
# B, a band 72 pixels high along the top, 8 pixels above A. B is 3.9 times A's area, so a map
# that spreads its weight evenly answers with the areas' ratio, and the model need not.
BOX_A = (80, 144, 80, 144)
BOX_B = (0, 72, 0, 224)


def box_mask(box: tuple[int, int, int, int], size: int = 224) -> torch.Tensor:
    """A (size, size) boolean mask, True inside ``box`` = (top, bottom, left, right)."""
    top, bottom, left, right = box
    if not (0 <= top < bottom <= size and 0 <= left < right <= size):
        raise ValueError(f"box {box} must lie inside a {size} x {size} image")
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


class TwoBoxes(torch.nn.Module):
    """f(x) = g(x_A) + h(x_B): ``model``'s logits on the input with everything outside box A
    set to 0, plus its logits with everything outside box B set to 0.

    Both masked copies go through ``model`` in one batch (first every A copy, then every B
    copy), so a layer inside ``model`` sees a batch twice the input's size."""

    def __init__(self, model: torch.nn.Module, box_a=BOX_A, box_b=BOX_B, size: int = 224):
        super().__init__()
        a, b = box_mask(box_a, size), box_mask(box_b, size)
        if (a & b).any():
            raise ValueError(f"the boxes {box_a} and {box_b} must not overlap")
        self.model = model
        self.register_buffer("masks", torch.stack([a, b]).float()[:, None, None])

    def parts(self, x: torch.Tensor) -> torch.Tensor:
        """(2, B, classes): g's logits (row 0) and h's (row 1) for each input."""
        masked = (x.unsqueeze(0) * self.masks).flatten(0, 1)
        return self.model(masked).view(2, len(x), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts(x).sum(dim=0)


@torch.no_grad()
def right_share(known: TwoBoxes, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """For each input, the share of the target's score difference f(x) - f(0) that comes from
    box A: (g(x_A) - g(0)) / (|g(x_A) - g(0)| + |h(x_B) - h(0)|), which is
    (g(x_A) - g(0)) / (f(x) - f(0)) where both parts are positive."""
    rows = torch.arange(len(inputs))
    change = known.parts(inputs)[:, rows, targets] - known.parts(torch.zeros_like(inputs))[
        :, rows, targets]
    return change[0] / change.abs().sum(dim=0)


def answer_share(attributions: torch.Tensor, box_a=BOX_A, box_b=BOX_B) -> torch.Tensor:
    """For each (C, H, W) map of a batch, its answer to the same question: the signed
    attribution inside box A, S_A, over |S_A| + |S_B| (S_B: the signed attribution inside B).
    A map with nothing inside either box answers 0."""
    size = attributions.shape[-1]
    values = attributions.detach().float().sum(dim=1)
    inside = [values[:, box_mask(box, size)].sum(dim=1) for box in (box_a, box_b)]
    total = inside[0].abs() + inside[1].abs()
    return inside[0] / torch.where(total > 0, total, torch.ones_like(total))


def split_error(attributions: torch.Tensor, truth: torch.Tensor, box_a=BOX_A,
                box_b=BOX_B) -> list[float]:
    """|answer - right answer| for each map of a batch (lower is better)."""
    return (answer_share(attributions, box_a, box_b) - truth).abs().tolist()
