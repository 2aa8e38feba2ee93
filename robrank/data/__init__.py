"""Dataset contracts shared by every dataset plugin, and the batch layouts built on them.

``robrank.data.loading`` (``get_source``, ``load_split``, ``dataset_record``) resolves
datasets by name through the plugin registry; ``robrank.data.kinds`` builds the SPC-2 and
triplet layouts; ``robrank.data.sources`` holds reusable sources for plugin authors.
"""
from .base import DatasetSource, FileImageDataset, ImageDataset, TensorImageDataset, data_root_from_env

__all__ = ["DatasetSource", "ImageDataset", "TensorImageDataset", "FileImageDataset", "data_root_from_env"]
