"""Datasets: bundled toys and digits, MNIST found locally, user files, and fitted preprocessing."""

from probgen.data.datasets import DATASETS, Dataset, fit_preprocessor, load_dataset
from probgen.data.preprocess import ImageScaling, Preprocessor, Standardize

__all__ = [
    "DATASETS",
    "Dataset",
    "ImageScaling",
    "Preprocessor",
    "Standardize",
    "fit_preprocessor",
    "load_dataset",
]
