"""Networks and (later) losses, augmentation, datasets and the training loop."""
