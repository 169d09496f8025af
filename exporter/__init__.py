"""ONNX export: one GatedSparseMLP node per FFN, with a local-function body any runtime can inline."""
