"""Gate block sizes: how many hidden neurons one micro-gate logit switches on and off together.

Torch-free, so that the command line builds its help from them without importing torch.
"""

# Calibration, wrapping and the oracle use this unless told otherwise. Chosen for accuracy: the trained
# built-ins keep their AP at MGS target 0.9 with blocks of 8 and lose 8-11 AP points with blocks of 32,
# because a token's few firing neurons spread over most 32-neuron blocks (docs/CALIBRATION.md).
DEFAULT_BLOCK_SIZE = 8

# `gsmlp bench ffn`'s default: the block the kernels are tuned for and docs/PERFORMANCE.md's kernel tables
# were measured at. Larger blocks reuse each gathered weight panel more, so the same sparsity runs faster
# (docs/CALIBRATION.md has the speed at blocks of 8, 16 and 32).
KERNEL_BENCH_BLOCK_SIZE = 32
