"""Bundled datasets: MNIST and Fashion-MNIST (``mnist``), CUB-200-2011, Cars-196, Stanford
Online Products, CIFAR-10, and scikit-learn's 8x8 digits as the zero-download default.

Each module registers through its own ``robrank`` entry point; the file formats, search
paths and splits live in :mod:`robrank.data.sources`, so every module here is metadata.
"""
