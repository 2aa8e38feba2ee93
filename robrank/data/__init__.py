"""Dataset contracts shared by every dataset plugin, and the batch layouts built on them."""
from .base import DatasetSource, FileImageDataset, ImageDataset, TensorImageDataset, data_root_from_env

__all__ = ["DatasetSource", "ImageDataset", "TensorImageDataset", "FileImageDataset", "data_root_from_env"]
