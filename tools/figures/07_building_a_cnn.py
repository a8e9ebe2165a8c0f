"""Instructor figures of lesson 07 (Building a CNN): pictures a learner sees before running anything."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# The seed CNN of COURSE_SPEC, as data: (kind, settings). Shapes, parameters and MACs are computed from it.
SEED_LAYERS = [
    ("Conv2d", {"in": 3, "out": 4, "kernel": 3, "padding": 1}),
    ("ReLU", {}),
    ("MaxPool2d", {"kernel": 2}),
    ("Conv2d", {"in": 4, "out": 8, "kernel": 3, "padding": 1}),
    ("ReLU", {}),
    ("MaxPool2d", {"kernel": 2}),
    ("Flatten", {}),
    ("Linear", {"in": 2048, "out": 10}),
]
INPUT_SHAPE = (3, 64, 64)  # one RGB image, channels first (the batch axis is left out)


def trace(layers, shape):
    """For each layer: (kind, settings, output shape, parameters, MACs), one image, from the shape formulas.

    Conv2d (stride 1): H' = H + 2p - k + 1, parameters out*in*k*k + out, MACs H'*W'*out * in*k*k.
    MaxPool2d(k): H' = H // k. Flatten: one axis of C*H*W. Linear: out features, in*out + out parameters,
    in*out MACs. ReLU keeps the shape. Each layer checks that the shape it receives fits it.
    """
    rows = []
    for kind, s in layers:
        params = macs = 0
        if kind == "Conv2d":
            c, h, w = shape
            if c != s["in"]:
                raise ValueError(f"Conv2d expects {s['in']} channels, receives {c}")
            h, w = (size + 2 * s["padding"] - s["kernel"] + 1 for size in (h, w))
            shape = (s["out"], h, w)
            params = s["out"] * s["in"] * s["kernel"] ** 2 + s["out"]
            macs = s["out"] * h * w * s["in"] * s["kernel"] ** 2
        elif kind == "MaxPool2d":
            c, h, w = shape
            shape = (c, h // s["kernel"], w // s["kernel"])
        elif kind == "Flatten":
            c, h, w = shape
            shape = (c * h * w,)
        elif kind == "Linear":
            if shape != (s["in"],):
                raise ValueError(f"Linear expects {s['in']} features, receives {shape}")
            shape = (s["out"],)
            params, macs = s["in"] * s["out"] + s["out"], s["in"] * s["out"]
        rows.append((kind, s, shape, params, macs))
    return rows


def _settings_text(kind, s):
    if kind == "Conv2d":
        return f"{s['in']}→{s['out']} ch\n{s['kernel']}×{s['kernel']}, pad {s['padding']}"
    if kind == "MaxPool2d":
        return f"{s['kernel']}×{s['kernel']}, stride {s['kernel']}"
    if kind == "Linear":
        return f"{s['in']}→{s['out']}"
    return ""


def _shape_text(shape):
    return "×".join(str(n) for n in shape)


def figure_seed_data_flow():
    """The seed CNN's data flow for one 64x64 RGB image: a box per layer and the tensor shape on each arrow, computed
    from the layer list by ``trace`` (per-layer parameters and MACs are left out: the lesson asks for them first)."""
    rows = trace(SEED_LAYERS, INPUT_SHAPE)
    colours = {"Conv2d": "#c6dbef", "ReLU": "#fdd0a2", "MaxPool2d": "#c7e9c0", "Flatten": "#e0e0e0",
               "Linear": "#dadaeb"}
    box_w, gap = 1.3, 1.25
    fig, ax = plt.subplots(figsize=(12, 2.0))
    ax.set_xlim(-1.0, len(rows) * (box_w + gap) + 1.0)
    ax.set_ylim(-0.75, 0.75)
    ax.axis("off")

    def arrow(x0, x1):
        ax.add_patch(FancyArrowPatch((x0, 0.0), (x1, 0.0), arrowstyle="-|>", mutation_scale=8, color="#555555",
                                     linewidth=0.8))

    ax.text(-0.5, 0.0, f"input\n{_shape_text(INPUT_SHAPE)}", ha="center", va="center", fontsize=8)
    left = gap / 2
    arrow(-0.05, left - 0.02)
    for i, (kind, s, *_) in enumerate(rows):
        if i:  # the tensor between the previous layer and this one
            arrow(left - gap + 0.05, left - 0.02)
            ax.text(left - gap / 2, 0.22, _shape_text(rows[i - 1][2]), ha="center", va="bottom", fontsize=7.5,
                    color="#08519c")
        ax.add_patch(FancyBboxPatch((left, -0.55), box_w, 1.1, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=colours[kind], edgecolor="#555555", linewidth=0.8))
        centre = left + box_w / 2
        ax.text(centre, 0.2, kind, ha="center", va="center", fontsize=8, weight="bold")
        ax.text(centre, -0.2, _settings_text(kind, s), ha="center", va="center", fontsize=7)
        left += box_w + gap
    arrow(left - gap + 0.05, left - gap / 2 - 0.05)
    ax.text(left - gap / 2 + 0.5, 0.0, f"logits\n{_shape_text(rows[-1][2])}", ha="center", va="center", fontsize=8)
    total_params, total_macs = sum(r[3] for r in rows), sum(r[4] for r in rows)
    ax.set_title(f"The seed CNN on one {INPUT_SHAPE[1]}×{INPUT_SHAPE[2]} RGB image: "
                 f"{total_params:,} parameters, {total_macs:,} multiply-accumulates", fontsize=10)
    fig.tight_layout()
    return fig
