"""The backends `gsmlp validate` and the demo compare, by name: plain constants, no imports, so that argument
parsing and tolerance files know them without loading torch, onnxruntime or tensorrt."""

REFERENCE = "pytorch"  # every other backend is compared with it
BACKENDS = (REFERENCE, "onnxruntime", "tensorrt")
