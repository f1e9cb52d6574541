"""Training plumbing: the LightningCLI, callbacks, checkpoints, preemption and locks."""
