"""Datasets as whole tensors: reading and checking their files, the seeded split, the batched loader."""
