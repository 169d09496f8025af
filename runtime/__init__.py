"""Deploy-time runners that need neither torch nor the rest of gsmlp (TensorRT + pycuda)."""
