"""Training loops, losses and augmentation."""
