"""mnist-cli: train, evaluate and use MNIST digit classifiers described in YAML."""

__version__ = "0.1.0"
