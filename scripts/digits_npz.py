#!/usr/bin/env python3
"""Writes scikit-learn's 8 x 8 digits (1,797 real images, shipped inside its
wheel) as a Keras-style .npz: x_train, y_train, x_test, y_test, pixels scaled
from 0-16 to 0-255 bytes. The first 1,437 images train, the last 360 test.

    python scripts/digits_npz.py OUT.npz
"""
import sys

import numpy as np
from sklearn.datasets import load_digits


def main(out):
    digits = load_digits()
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)  # n x 8 x 8
    y = digits.target.astype(np.uint8)
    cut = 1437
    np.savez(out, x_train=x[:cut], y_train=y[:cut], x_test=x[cut:], y_test=y[cut:])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: digits_npz.py OUT.npz")
    main(sys.argv[1])
