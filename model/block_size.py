"""The default gate block: how many hidden neurons one micro-gate logit switches on and off together.

One value for every place that wraps, calibrates or benchmarks an FFN without being told otherwise: the
kernels and the calibration choices were measured at it (docs/PERFORMANCE.md, docs/CALIBRATION.md).
Torch-free, so that the command line builds its help from it without importing torch.
"""

DEFAULT_BLOCK_SIZE = 32
