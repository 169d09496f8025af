"""The parity harness: the same preprocessed images through every backend, COCO mAP and output deltas."""
