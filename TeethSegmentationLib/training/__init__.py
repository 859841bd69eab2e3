"""Training both networks: cases and patches, augmentation, losses, the trainer, checkpoints, DDP."""
