"""Using a trained model: loading it, reading people's images, preparing them like MNIST, predicting."""
