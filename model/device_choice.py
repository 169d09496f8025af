"""What `--device` chooses between for PyTorch's forward passes (gsmlp.model.placement moves the model).

Torch-free, so that the command line builds its help from it without importing torch.
"""

DEVICE_CHOICES = ("cpu", "cuda")
DEFAULT_DEVICE = "cpu"
