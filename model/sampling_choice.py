"""What `--torch-sampling` chooses between for Deformable DETR's multi-scale sampling in PyTorch.

Torch-free, so that the command line builds its help from it without importing torch (gsmlp.model.sampling
does the routing): "auto" the gsmlp torch op where it is built, else transformers' module; "op" that op or an
error naming what is missing; "transformers" transformers' own module, unmodified.
"""

SAMPLING_CHOICES = ("auto", "op", "transformers")
DEFAULT_SAMPLING = "auto"
