#!/usr/bin/env python3
"""The A2 lambda sweep as a careful NumPy script: the yardstick for shallow's speed.

Trains the two-layer ReLU network (3072-50-10, softmax, L2 lambda) of
Assignment 2 for each lambda of a log grid, with cyclical learning rates
(eta 1e-5 to 1e-1, n_s = 2 epochs), batch 100 in order, float32, on the
`full` split (batches 1-5 less their last 5,000 images for validation).
Like `shallow sweep`'s default curves it evaluates, 5 times a cycle, the cost
on 1,000 training images and on the validation set, and at the end the
accuracy on train, validation and test. The lambdas are shared between
--processes processes, each with one BLAS thread (set OPENBLAS_NUM_THREADS=1).

    OPENBLAS_NUM_THREADS=1 python scripts/numpy_peer.py --data DIR --lambdas 8 --cycles 3
"""

import argparse
import multiprocessing as mp
import os
import time

import numpy as np


def load(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:], raw[:, 0].astype(np.int64)


def split(data):
    xs, ys = zip(*(load(os.path.join(data, f"data_batch_{i}.bin")) for i in range(1, 6)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    xt, yt = load(os.path.join(data, "test_batch.bin"))
    train = x[:-5000].astype(np.float32) / 255
    mean, std = train.mean(axis=0), train.std(axis=0)

    def standardise(p):
        return np.asfortranarray(((p.astype(np.float32) / 255 - mean) / std).T)

    return (standardise(x[:-5000]), y[:-5000]), (standardise(x[-5000:]), y[-5000:]), (standardise(xt), yt)


def evaluate(w1, b1, w2, b2, x, y, lam):
    h = np.maximum(w1 @ x + b1, 0)
    s = w2 @ h + b2
    s -= s.max(axis=0)
    p = np.exp(s)
    p /= p.sum(axis=0)
    loss = -np.log(p[y, np.arange(len(y))]).mean()
    cost = loss + lam * ((w1 * w1).sum() + (w2 * w2).sum())
    return cost, (p.argmax(axis=0) == y).mean()


DATA = None  # the split, set before the workers fork: shared, not copied


def train(job):
    lam, seed, cycles = job
    tr, va, te = DATA
    x, y = tr
    rng = np.random.default_rng(seed)
    d, n = x.shape
    w1 = (rng.standard_normal((50, d)) / np.sqrt(d)).astype(np.float32)
    w2 = (rng.standard_normal((10, 50)) / np.sqrt(50)).astype(np.float32)
    b1, b2 = np.zeros((50, 1), np.float32), np.zeros((10, 1), np.float32)
    batch, per_epoch = 100, n // 100
    ns, steps = 2 * per_epoch, 2 * 2 * per_epoch * cycles
    log_every = 2 * ns // 5
    onehot = np.eye(10, dtype=np.float32)
    sample = (x[:, :1000], y[:1000])
    curve = []
    for t in range(steps):
        c = t % (2 * ns)
        eta = 1e-5 + (1e-1 - 1e-5) * (c / ns if c < ns else 2 - c / ns)
        j = (t % per_epoch) * batch
        xb, yb = x[:, j : j + batch], y[j : j + batch]
        h = np.maximum(w1 @ xb + b1, 0)
        s = w2 @ h + b2
        s -= s.max(axis=0)
        p = np.exp(s)
        p /= p.sum(axis=0)
        g = (p - onehot[:, yb]) / batch
        gw2 = g @ h.T + 2 * lam * w2
        gb2 = g.sum(axis=1, keepdims=True)
        g = (w2.T @ g) * (h > 0)
        gw1 = g @ xb.T + 2 * lam * w1
        gb1 = g.sum(axis=1, keepdims=True)
        w1 -= np.float32(eta) * gw1
        b1 -= np.float32(eta) * gb1
        w2 -= np.float32(eta) * gw2
        b2 -= np.float32(eta) * gb2
        if (t + 1) % log_every == 0:
            curve.append((evaluate(w1, b1, w2, b2, *sample, lam), evaluate(w1, b1, w2, b2, *va, lam)))
    accs = [evaluate(w1, b1, w2, b2, *s, lam)[1] for s in (tr, va, te)]
    return lam, accs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/cifar-10-batches-bin")
    ap.add_argument("--lambdas", type=int, default=8)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    global DATA
    DATA = split(a.data)
    lams = np.logspace(-5, -1, a.lambdas)
    jobs = [(float(lam), i, a.cycles) for i, lam in enumerate(lams)]
    with mp.get_context("fork").Pool(a.processes) as pool:
        for lam, accs in pool.imap(train, jobs):
            print(f"lambda {lam:.2e}: train {accs[0]:.4f} val {accs[1]:.4f} test {accs[2]:.4f}")
    print(f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
