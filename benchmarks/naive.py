"""The reference loop, written the way common tutorials write it: torchvision MNIST with per-sample
ToTensor/Normalize transforms, a DataLoader, and the same model, batch and optimizer as the recipe.

    python benchmarks/naive.py --recipe classic-256 --epochs 3

Prints one JSON object: seconds of each epoch, samples per epoch, final test accuracy.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

# recipe -> (hidden widths, batch size, normalise, xavier init); the rest is Adam at lr 1e-3, as the recipes.
RECIPES = {
    "classic-256": ([256], 64, True, True),
    "classic-64x3": ([64, 64, 64], 15, False, False),
}


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=RECIPES, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--root", required=True, help="folder holding MNIST/raw/ with the unpacked files")
    args = parser.parse_args()
    widths, batch_size, normalize, xavier = RECIPES[args.recipe]
    torch.manual_seed(0)

    steps = [transforms.ToTensor()] + ([transforms.Normalize((0.1307,), (0.3081,))] if normalize else [])
    transform = transforms.Compose(steps)
    train_set = datasets.MNIST(args.root, train=True, download=False, transform=transform)
    test_set = datasets.MNIST(args.root, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)

    model = build(widths, xavier)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    epoch_seconds = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        running_loss = 0.0
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        epoch_seconds.append(time.perf_counter() - t0)

    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in test_loader:
            correct += (model(images).argmax(1) == labels).sum().item()
    result = {"epoch_seconds": epoch_seconds, "samples_per_epoch": len(train_set), "test_accuracy": correct / len(test_set)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
