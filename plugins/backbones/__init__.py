"""Bundled backbones: the 28x28 grey networks (:mod:`.small`) and the torchvision ImageNet
networks (:mod:`.imagenet`), each module its own entry point."""
