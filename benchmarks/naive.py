"""The peers `mnist train` is measured against, each written the way its users write it, on the same recipe:

- tutorial: the common tutorials' loop, torchvision MNIST with per-sample ToTensor/Normalize, a DataLoader;
- lightning: PyTorch Lightning as its docs write it, the same torchvision dataset and DataLoader;
- lightning-tensors: Lightning with the images pre-loaded as one normalised TensorDataset (a careful user).

    python benchmarks/naive.py --recipe classic-256 --trainer lightning --epochs 3 --root DIR [--limit N]

Same model, init, Adam at lr 1e-3 and batch size as the recipe. Lightning runs without progress bar, logger and
checkpoints, so what is timed is its loop, not its files. Prints one JSON object: seconds of each epoch, samples per
epoch, final test accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import datasets, transforms

# recipe -> (hidden widths, batch size, normalise, xavier init); the rest is Adam at lr 1e-3, as the recipes.
RECIPES = {
    "classic-256": ([256], 64, True, True),
    "classic-64x3": ([64, 64, 64], 15, False, False),
}
TRAINERS = ("tutorial", "lightning", "lightning-tensors")
MEAN, STD = 0.1307, 0.3081


def build(widths: list[int], xavier: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 784
    for w in widths:
        layers += [nn.Linear(fan_in, w), nn.ReLU()]
        fan_in = w
    model = nn.Sequential(*layers, nn.Linear(fan_in, 10))
    if xavier:
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    return model


def train_tutorial(model: nn.Module, train_set: Dataset, batch_size: int, epochs: int) -> list[float]:
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    epoch_seconds = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        running_loss = 0.0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        epoch_seconds.append(time.perf_counter() - t0)
    return epoch_seconds


def train_lightning(model: nn.Module, train_set: Dataset, batch_size: int, epochs: int) -> list[float]:
    import lightning as L

    class Classifier(L.LightningModule):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            images, labels = batch
            return F.cross_entropy(self.model(images), labels)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            self.seconds.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            default_root_dir=root,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        )
        trainer.fit(Classifier(model), DataLoader(train_set, batch_size=batch_size, shuffle=True))
    return timer.seconds


def preloaded(mnist: datasets.MNIST, normalize: bool, limit: int | None) -> TensorDataset:
    """The training images as one float tensor (N, 1, 28, 28), normalised once: what ToTensor/Normalize give per sample."""
    images = mnist.data[:limit].unsqueeze(1).float() / 255
    return TensorDataset((images - MEAN) / STD if normalize else images, mnist.targets[:limit])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=RECIPES, required=True)
    parser.add_argument("--trainer", choices=TRAINERS, default="tutorial")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--root", required=True, help="folder holding MNIST/raw/ with the unpacked files")
    parser.add_argument("--limit", type=int, help="train on the first N images only (smoke runs)")
    args = parser.parse_args()
    widths, batch_size, normalize, xavier = RECIPES[args.recipe]
    torch.manual_seed(0)

    steps = [transforms.ToTensor()] + ([transforms.Normalize((MEAN,), (STD,))] if normalize else [])
    transform = transforms.Compose(steps)
    mnist = datasets.MNIST(args.root, train=True, download=False, transform=transform)
    train_set: Dataset = mnist if args.limit is None else Subset(mnist, range(args.limit))
    test_set = datasets.MNIST(args.root, train=False, download=False, transform=transform)

    model = build(widths, xavier)
    if args.trainer == "tutorial":
        epoch_seconds = train_tutorial(model, train_set, batch_size, args.epochs)
    else:
        train_set = preloaded(mnist, normalize, args.limit) if args.trainer == "lightning-tensors" else train_set
        epoch_seconds = train_lightning(model, train_set, batch_size, args.epochs)

    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test_set, batch_size=1000):
            correct += (model(images).argmax(1) == labels).sum().item()
    result = {"epoch_seconds": epoch_seconds, "samples_per_epoch": len(train_set), "test_accuracy": correct / len(test_set)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
