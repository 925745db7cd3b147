"""Small networks the tests run the course's methods on, in place of the ImageNet models."""
import torch
import torch.nn as nn


class Small(nn.Module):
    """Two convolutions with a ReLU module between them and a 10-class head; ``channels``,
    ``kernel`` and ``stride`` set its size (cheap enough for 224 x 224 inputs with stride 4)."""

    def __init__(self, channels=8, kernel=5, stride=2):
        super().__init__()
        pad = kernel // 2
        self.conv = nn.Conv2d(3, channels, kernel, stride=stride, padding=pad)
        self.relu = nn.ReLU()
        self.layer = nn.Conv2d(channels, channels, kernel, stride=stride, padding=pad)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self.layer(self.relu(self.conv(x))).mean(dim=(2, 3)))


class Tiny(nn.Module):
    """A 1000-class network cheap on 224 × 224 photos: a strided convolution, a ReLU, the mean,
    a linear head (scaled up so that its logits spread like an ImageNet model's)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 8, stride=8)
        self.head = nn.Linear(16, 1000)
        with torch.no_grad():
            self.head.weight.mul_(20)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
