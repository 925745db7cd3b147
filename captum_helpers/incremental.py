"""Occlusion that recomputes only what each patch changes: captum's ``Occlusion``, exact, faster.

An occluded copy of a photo differs from the photo only inside its window, so in each layer its
activations differ only inside that window's cone of influence: the window grown by each layer's
kernel and shrunk by its stride (notebook 04's receptive field, read the other way). The photo's
own activations are computed once and kept; for each patch, each layer recomputes only the
rectangle of its output that can differ, from the rectangle of its input it reads (the kept
activations with the patch's changes laid over them), many patches at a time. After the global
average pool every patch has a vector of its own, and the classifier runs on those. The result
is captum's: the same occluded inputs, the same differences of the target's output, averaged over
the windows that cover each input value as captum averages them.

It handles networks made of 2-D convolutions (any groups, TensorFlow's "same" padding too),
max pools, batch norms in eval mode, element-wise activations, additions (residual connections),
a global average pool, flatten and linear layers: torchvision's ResNets and EfficientNet-Lite0.
For anything else it says so once and calls captum's ``Occlusion``. Introduced in notebook 03;
``bench/occlusion.py`` compares the two.
"""
from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from captum.attr import Occlusion
from torch import nn

POINTWISE = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Identity, nn.Dropout, nn.SiLU,
             nn.Sigmoid, nn.Hardswish, nn.GELU)
POINTWISE_FUNCTIONS = (torch.relu, F.relu, F.relu6, F.hardtanh, torch.sigmoid, F.silu,
                       F.hardswish, F.gelu)
PATCHES = 64  # occluded copies computed together: memory follows this, not the window count
_warned: set[str] = set()


class Unsupported(Exception):
    """A layer or an argument the incremental path does not handle."""


@dataclass
class Patched:
    """A layer's activations for each patch: the photo's (``kept``, 1 x C x H x W) with
    ``region`` (N x C x h x w) laid over it at rows ``ys``, columns ``xs``; ``boxes`` (N x 4:
    top, bottom, left, right, ends excluded) is where they can differ from the photo's."""
    kept: torch.Tensor
    region: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor
    boxes: torch.Tensor


@dataclass
class Each:
    """A value that differs for every patch as a whole: one row per patch."""
    value: torch.Tensor


def materialize(value: Patched, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int,
                pad: float = 0.0) -> torch.Tensor:
    """Each patch's activations on the window of ``height`` x ``width`` at ``ys``, ``xs`` (which
    may reach past the edges, where the value is ``pad``): N x C x height x width."""
    kept, (_, _, rows, cols) = value.kept, value.kept.shape
    top, left = max(0, -int(ys.min())), max(0, -int(xs.min()))
    bottom = max(0, int(ys.max()) + height - rows)
    right = max(0, int(xs.max()) + width - cols)
    padded = F.pad(kept, (left, right, top, bottom), value=pad)[0]
    # every window of that size, as a view: Y x X x C x height x width; one copy takes N of them
    windows = padded.unfold(1, height, 1).unfold(2, width, 1).permute(1, 2, 0, 3, 4)
    out = windows[ys + top, xs + left]  # N x C x height x width
    h, w = value.region.shape[-2:]
    if h == 0 or w == 0:  # nothing laid over: the photo's activations
        return out
    dy, dx = value.ys - ys, value.xs - xs  # where each region starts in its window
    n = torch.arange(len(ys))
    if bool((dy >= 0).all() and (dx >= 0).all() and (dy + h <= height).all()
            and (dx + w <= width).all()):  # each region inside its window: lay it there
        out.unfold(2, h, 1).unfold(3, w, 1)[n, :, dy, dx] = value.region
        return out
    rr = ys[:, None] + torch.arange(height) - value.ys[:, None]  # rows of the region
    cc = xs[:, None] + torch.arange(width) - value.xs[:, None]
    inside = ((rr >= 0) & (rr < h))[:, :, None] & ((cc >= 0) & (cc < w))[:, None, :]
    laid = value.region[n[:, None, None], :, rr.clamp(0, h - 1)[:, :, None],
                        cc.clamp(0, w - 1)[:, None, :]]
    return torch.where(inside[:, None], laid.permute(0, 3, 1, 2), out)


def _window(low: torch.Tensor, high: torch.Tensor, size: int) -> tuple[torch.Tensor, int]:
    """Starts of windows of one length, inside [0, size), each covering its [low, high)."""
    length = max(1, int((high - low).max()))
    return torch.minimum(low, torch.tensor(size - length)).clamp(min=0), min(length, size)


def spatial(value: Patched, op, kernel: tuple, stride: tuple, pads: tuple, out_shape: tuple,
            pad_value: float = 0.0, dry: bool = False) -> tuple[Patched, int]:
    """A convolution or a pool (``op`` on an unpadded window) on the part each patch changes;
    ``pads``: top, bottom, left, right. Returns the result and the output values computed
    (``dry``: their count only, the values left unset)."""
    (kh, kw), (sh, sw), (top, _, left, _) = kernel, stride, pads
    rows, cols = out_shape[-2:]
    y0, y1, x0, x1 = value.boxes.unbind(1)
    o = torch.stack([torch.div(y0 + top - kh, sh, rounding_mode="floor") + 1,
                     -torch.div(-(y1 + top), sh, rounding_mode="floor"),
                     torch.div(x0 + left - kw, sw, rounding_mode="floor") + 1,
                     -torch.div(-(x1 + left), sw, rounding_mode="floor")], 1)
    o = torch.minimum(o.clamp(min=0), torch.tensor([rows, rows, cols, cols]))
    ys, h = _window(o[:, 0], o[:, 1], rows)
    xs, w = _window(o[:, 2], o[:, 3], cols)
    if dry:
        region = torch.empty(len(ys), out_shape[1], h, w)
    else:
        region = op(materialize(value, ys * sh - top, xs * sw - left, (h - 1) * sh + kh,
                                (w - 1) * sw + kw, pad_value))
    return Patched(None, region, ys, xs, o), region.numel()


class IncrementalOcclusion:
    """captum's ``Occlusion`` for one model, computed incrementally (see the module)."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.macs, self.full_macs, self._dry = model, 0, 0, False
        try:
            self.graph = fx.GraphModule(model, _Tracer().trace(model))
        except Exception as err:  # noqa: BLE001 - any tracing failure means: not handled
            self.graph, self._why = None, f"it cannot be traced ({type(err).__name__})"

    def attribute(self, inputs: torch.Tensor, sliding_window_shapes: tuple, strides=1,
                  baselines=None, target=None, additional_forward_args=None,
                  perturbations_per_eval: int = PATCHES, show_progress: bool = False):
        """As captum's ``Occlusion.attribute`` for one input tensor (N x C x H x W)."""
        if isinstance(inputs, tuple) and len(inputs) == 1:  # captum's tuple form: a tuple back
            one = baselines[0] if isinstance(baselines, tuple) and len(baselines) == 1 \
                else baselines
            return (self.attribute(inputs[0], sliding_window_shapes, strides, one, target,
                                   additional_forward_args, perturbations_per_eval,
                                   show_progress),)
        try:
            if self.graph is None:
                raise Unsupported(self._why)
            if additional_forward_args is not None or not isinstance(inputs, torch.Tensor) \
                    or inputs.dim() != 4 or self.model.training:
                raise Unsupported("it takes one N x C x H x W input, no other forward arguments, "
                                  "and a model in eval mode")
            window = tuple(sliding_window_shapes)
            step = (strides,) * 3 if isinstance(strides, int) else tuple(strides)
            if len(window) != 3 or len(step) != 3:
                raise Unsupported("its windows and strides have one entry per C, H and W")
            targets = _targets(target, len(inputs))
            with torch.no_grad():
                return torch.cat([self._one(inputs[i:i + 1], window, step,
                                            _baseline(baselines, inputs, i), targets[i],
                                            perturbations_per_eval)
                                  for i in range(len(inputs))])
        except Unsupported as why:
            name = type(self.model).__name__
            if name not in _warned:
                _warned.add(name)
                warnings.warn(f"IncrementalOcclusion: {name} is computed by captum's Occlusion "
                              f"instead: {why}", stacklevel=2)
            return Occlusion(self.model).attribute(
                inputs, sliding_window_shapes=sliding_window_shapes, strides=strides,
                baselines=baselines, target=target,
                additional_forward_args=additional_forward_args,
                perturbations_per_eval=perturbations_per_eval, show_progress=show_progress)

    def share(self, shape: tuple, sliding_window_shapes: tuple, strides=1) -> float:
        """The share of captum's convolution work (occluded copies and the photo) that
        ``attribute`` does for one input of ``shape`` (C, H, W): counted, not computed, after one
        forward pass; 1.0 where it would fall back to captum."""
        step = (strides,) * 3 if isinstance(strides, int) else tuple(strides)
        if self.graph is None or self.model.training:
            return 1.0
        self._dry = True
        try:
            with torch.no_grad():
                self._one(torch.zeros(1, *shape), tuple(sliding_window_shapes), step,
                          torch.zeros(1, *shape), 0, PATCHES)
        except Unsupported:
            return 1.0
        finally:
            self._dry = False
        return self.macs / self.full_macs

    def _one(self, photo, window, step, baseline, target, batch):
        kept = {}
        full = fx.Interpreter(self.graph)
        full.run_node = _keeping(full.run_node, kept)
        initial = full.run(photo)[0, target]
        self.full_macs = _macs(self.graph, kept)
        shape = photo.shape[1:]
        counts = [math.ceil((size - w) / s) + 1 for size, w, s in zip(shape, window, step)]
        starts = torch.cartesian_prod(*[torch.arange(n) * s for n, s in zip(counts, step)])
        starts = starts.reshape(-1, 3)
        total, weights = torch.zeros(shape), torch.zeros(shape)
        self.macs = 0
        for first in range(0, len(starts), batch):
            chunk = starts[first:first + batch]
            outputs = self._patches(photo, baseline, chunk, window, kept)
            for (c, y, x), diff in zip(chunk.tolist(), (initial - outputs[:, target]).tolist()):
                part = (slice(c, c + window[0]), slice(y, y + window[1]), slice(x, x + window[2]))
                total[part] += diff
                weights[part] += 1
        self.full_macs *= len(starts) + 1
        return (total / weights)[None]

    def _patches(self, photo, baseline, starts, window, kept) -> torch.Tensor:
        _, rows, cols = photo.shape[1:]
        y0, x0 = starts[:, 1], starts[:, 2]
        y1, x1 = (y0 + window[1]).clamp(max=rows), (x0 + window[2]).clamp(max=cols)
        ys, h = _window(y0, y1, rows)
        xs, w = _window(x0, x1, cols)
        source = Patched(photo, photo.new_zeros(len(ys), photo.shape[1], 0, 0), ys, xs,
                         torch.zeros(len(ys), 4, dtype=torch.long))
        region = materialize(source, ys, xs, h, w)
        base = materialize(Patched(baseline, source.region, ys, xs, source.boxes), ys, xs, h, w)
        r = ys[:, None] + torch.arange(h)
        c = xs[:, None] + torch.arange(w)
        ch = torch.arange(photo.shape[1])[None, :, None, None]
        mask = ((ch >= starts[:, 0, None, None, None])
                & (ch < starts[:, 0, None, None, None] + window[0])
                & ((r >= y0[:, None]) & (r < y1[:, None]))[:, None, :, None]
                & ((c >= x0[:, None]) & (c < x1[:, None]))[:, None, None, :]).float()
        region = region * (1 - mask) + base * mask
        values = {}
        for node in self.graph.graph.nodes:
            values[node] = self._step(node, values, kept, Patched(
                photo, region, ys, xs, torch.stack([y0, y1, x0, x1], 1)))
            if node.op == "output":
                out = values[node]
                return out.value if isinstance(out, Each) else out.expand(len(ys), -1)
        raise Unsupported("the graph has no output")

    def _step(self, node, values, kept, source):
        args = [values.get(a, a) if isinstance(a, fx.Node) else a for a in node.args]
        if node.op == "placeholder":
            return source
        if node.op == "get_attr" or not any(isinstance(a, (Patched, Each)) for a in args):
            return kept[node]  # the same for every patch
        if node.op == "output":
            return args[0]
        target = self.graph.get_submodule(node.target) if node.op == "call_module" else node.target
        x = args[0]
        if isinstance(x, Patched) and x.kept is None:
            x.kept = kept[node.args[0]]
        if node.op == "call_method" and node.target == "size" and isinstance(x, Patched):
            size = (len(x.region),) + tuple(kept[node.args[0]].shape[1:])  # a row per patch
            return torch.Size(size) if len(args) == 1 else size[args[1]]
        if isinstance(target, nn.Conv2d) and isinstance(x, Patched):
            if target.dilation != (1, 1) or target.padding_mode != "zeros" \
                    or isinstance(target.padding, str):
                raise Unsupported(f"{node.target}: dilation, padding mode or string padding")
            pads = _conv_pads(target)
            op = lambda crop: F.conv2d(crop, target.weight, target.bias, target.stride, 0, 1,  # noqa: E731
                                       target.groups)
            out, values_out = spatial(x, op, target.kernel_size, target.stride, pads,
                                      kept[node].shape, dry=self._dry)
            self.macs += values_out * target.weight[0].numel()
        elif isinstance(target, nn.MaxPool2d) and isinstance(x, Patched):
            k, s, p = (_pair(target.kernel_size), _pair(target.stride), _pair(target.padding))
            if target.dilation not in (1, (1, 1)) or target.ceil_mode:
                raise Unsupported(f"{node.target}: dilation or ceil_mode")
            out, _ = spatial(x, lambda crop: F.max_pool2d(crop, k, s), k, s,
                             (p[0], p[0], p[1], p[1]), kept[node].shape, float("-inf"),
                             self._dry)
        elif self._dry and isinstance(x, Patched) and (isinstance(target, POINTWISE)
                                                       or target in POINTWISE_FUNCTIONS):
            out = Patched(None, x.region, x.ys, x.xs, x.boxes)  # counting: the shape is enough
        elif isinstance(target, POINTWISE) and isinstance(x, Patched):
            out = Patched(None, target(x.region), x.ys, x.xs, x.boxes)
        elif target in POINTWISE_FUNCTIONS and isinstance(x, Patched):
            out = Patched(None, target(x.region, *args[1:], **node.kwargs), x.ys, x.xs, x.boxes)
        elif isinstance(x, Patched) and (
                isinstance(target, nn.AdaptiveAvgPool2d) and _pair(target.output_size) == (1, 1)
                or target is F.adaptive_avg_pool2d and _pair(args[1]) == (1, 1)):
            if self._dry:
                return Each(kept[node].expand(len(x.region), *kept[node].shape[1:]))
            h, w = x.region.shape[-2:]
            under = materialize(Patched(x.kept, x.region[:, :, :0, :0], x.ys, x.xs, x.boxes),
                                x.ys, x.xs, h, w)
            change = (x.region - under).sum((2, 3), keepdim=True) / x.kept[0, 0].numel()
            return Each(kept[node] + change)
        elif target in (operator.add, torch.add) or node.target == "add":
            return _add(args, node, kept, self._dry)
        elif all(isinstance(a, Each) or not isinstance(a, Patched) for a in args):
            return Each(_call(node, target, [a.value if isinstance(a, Each) else a
                                             for a in args], values))
        else:
            raise Unsupported(f"it does not handle {_name(node, target)}")
        return out

    def __repr__(self) -> str:
        return f"IncrementalOcclusion({type(self.model).__name__})"


def _add(args, node, kept, dry: bool = False) -> Patched | Each:
    a, b = args[:2]
    if isinstance(a, Each) or isinstance(b, Each):
        return Each((a.value if isinstance(a, Each) else a)
                    + (b.value if isinstance(b, Each) else b))
    parts = [p if isinstance(p, Patched) else None for p in (a, b)]
    for p, arg in zip(parts, node.args[:2]):
        if p is not None and p.kept is None:
            p.kept = kept[arg]
    patched = [p for p in parts if p is not None]
    boxes = torch.stack([p.boxes for p in patched])
    box = torch.stack([boxes[:, :, 0].min(0).values, boxes[:, :, 1].max(0).values,
                       boxes[:, :, 2].min(0).values, boxes[:, :, 3].max(0).values], 1)
    rows, cols = kept[node].shape[-2:]
    ys, h = _window(box[:, 0], box[:, 1], rows)
    xs, w = _window(box[:, 2], box[:, 3], cols)
    if dry:
        return Patched(kept[node], torch.empty(len(ys), kept[node].shape[1], h, w), ys, xs, box)
    total = 0
    for p, arg in zip(parts, node.args[:2]):
        if p is None:
            p = Patched(kept[arg], patched[0].region[:, :, :0, :0], ys, xs, box)
        total = total + materialize(p, ys, xs, h, w)
    return Patched(kept[node], total, ys, xs, box)


def _call(node, target, args, values):
    kwargs = {k: values.get(v, v) if isinstance(v, fx.Node) else v
              for k, v in node.kwargs.items()}
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "call_module" and isinstance(target, (nn.Linear, nn.Flatten, nn.Dropout,
                                                        nn.Identity, nn.ReLU, nn.ReLU6)):
        return target(*args, **kwargs)
    if node.op == "call_function" and target in (torch.flatten, operator.getitem, torch.cat,
                                                 F.relu, F.dropout):
        return target(*args, **kwargs)
    raise Unsupported(f"it does not handle {_name(node, target)}")


def _name(node: fx.Node, target) -> str:
    """What a node computes, for a message: the module's class and name, or the function."""
    if node.op == "call_module":
        return f"{type(target).__name__} ({node.target})"
    return getattr(target, "__name__", str(target))


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, name: str) -> bool:  # "same"-padded convs too
        return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, name)


def _keeping(run_node, kept):
    def run(node):
        kept[node] = result = run_node(node)
        return result
    return run


def _conv_pads(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """Top, bottom, left, right: the convolution's own padding, or a ZeroPad2d it applies."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if any(conv.padding):
            raise Unsupported("a convolution padded twice")
        return top, bottom, left, right
    probe = torch.zeros(1)
    if pad is not None and pad(probe) is not probe:  # an identity (its own class, or nn's) is fine
        raise Unsupported(f"{type(pad).__name__} before a convolution")
    return conv.padding[0], conv.padding[0], conv.padding[1], conv.padding[1]


def _macs(graph: fx.GraphModule, kept: dict) -> int:
    """Multiply-adds of the convolutions in one full forward pass."""
    return sum(kept[n][0].numel() * graph.get_submodule(n.target).weight[0].numel()
               for n in graph.graph.nodes if n.op == "call_module"
               and isinstance(graph.get_submodule(n.target), nn.Conv2d))


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _targets(target, n: int) -> list[int]:
    if target is None:
        raise Unsupported("it needs a target class")
    if isinstance(target, torch.Tensor):
        target = target.reshape(-1).tolist()
    if isinstance(target, int):
        return [target] * n
    if len(target) != n or not all(isinstance(t, int) for t in target):
        raise Unsupported("it takes one class index per input")
    return list(target)


def _baseline(baselines, inputs: torch.Tensor, i: int) -> torch.Tensor:
    if baselines is None:
        baselines = 0.0
    if isinstance(baselines, (int, float)):
        return torch.full_like(inputs[i:i + 1], float(baselines))
    if isinstance(baselines, torch.Tensor):
        return baselines.expand_as(inputs)[i:i + 1] if baselines.dim() == 4 \
            else baselines.expand_as(inputs[i:i + 1])
    raise Unsupported("baselines must be a number or a tensor")
