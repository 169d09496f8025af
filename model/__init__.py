"""The detector: loading checkpoints, the GatedSparseMLP FFN, pre- and post-processing."""
