"""mnist-cli: train, evaluate and use MNIST digit classifiers described in YAML."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait yield their core instead of spinning on it, which on a busy machine made epochs 5-10x
# slower; read once, when torch loads (commands import it later). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
