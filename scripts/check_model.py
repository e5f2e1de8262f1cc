#!/usr/bin/env python3
"""Checks a shallow model with other people's code: loads model.safetensors
with the safetensors package and applies it in NumPy (float64), runs
model.onnx in onnxruntime, and prints, as JSON, the largest difference of
each from the probabilities shallow gave (PROBS.npy, n x K) on the raw
pixels PIXELS.npy (uint8, n x C x H x W). Several models, comma-separated,
are averaged (the ONNX file then holds their ensemble).

    python scripts/check_model.py model.safetensors[,...] model.onnx PIXELS.npy PROBS.npy
"""
import json
import sys

import numpy as np
import onnxruntime
from safetensors import safe_open


def numpy_probabilities(path, pixels):
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k).astype(np.float64) for k in f.keys()}
    eps = float(meta["bn_eps"])
    layers = len(json.loads(meta["widths"])) - 1

    def preprocess(px):
        x = px.reshape(len(px), -1).astype(np.float64)
        x = (x / 255 - t["preprocess.mean"]) / t["preprocess.std"]
        if "preprocess.whiten" in t:
            x = x @ t["preprocess.whiten"].T
        return x

    def forward(x):
        for l in range(layers):
            s = x @ t[f"layers.{l}.weight"].T + t[f"layers.{l}.bias"]
            if l == layers - 1:
                break
            if f"layers.{l}.norm.weight" in t:
                n = lambda k: t[f"layers.{l}.norm.{k}"]
                s = (s - n("running_mean")) / np.sqrt(n("running_var") + eps) * n("weight") + n("bias")
            x = np.maximum(s, 0)
        if meta["loss"] == "bce":
            return 1 / (1 + np.exp(-s))
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    x = preprocess(pixels)
    p = forward(x)
    if meta.get("test_time_flips") == "true":
        # Test-time flips mirror the preprocessed features, as training does.
        mirrored = x.reshape(pixels.shape)[..., ::-1].reshape(len(x), -1)
        p = (p + forward(mirrored)) / 2
    return p


def main(models, onnx, pixels, probs):
    px, want = np.load(pixels), np.load(probs).astype(np.float64)
    # Several models (comma-separated): an ensemble, their probabilities averaged.
    members = models.split(",")
    p_numpy = sum(numpy_probabilities(m, px) for m in members) / len(members)
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    p_onnx = session.run(None, {"pixels": px})[0].astype(np.float64)
    print(json.dumps({
        "images": len(px),
        "numpy_max_diff": float(np.abs(p_numpy - want).max()),
        "onnx_max_diff": float(np.abs(p_onnx - want).max()),
        "numpy_argmax_agrees": float((p_numpy.argmax(1) == want.argmax(1)).mean()),
        "onnx_argmax_agrees": float((p_onnx.argmax(1) == want.argmax(1)).mean()),
    }))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: check_model.py MODEL.safetensors MODEL.onnx PIXELS.npy PROBS.npy")
    main(*sys.argv[1:])
