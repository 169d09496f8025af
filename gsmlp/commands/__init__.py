"""The subcommands of `gsmlp`.

A built command is a module with HELP, DESCRIPTION, add_arguments(parser) and run(args) -> exit status.
A pending one is only named here: it says it is not built and exits with status 2.
"""

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "build": "gsmlp.commands.build",
    "calibrate": "gsmlp.commands.calibrate",
    "eval": "gsmlp.commands.eval",
    "info": "gsmlp.commands.info",
}

# name -> one-line summary, for commands not built yet
PENDING: dict[str, str] = {
    "export": "export a (gated) detector to ONNX with GatedSparseMLP nodes",
    "validate": "COCO mAP parity across PyTorch, ONNX Runtime and TensorRT",
    "bench": "benchmark the sparse kernels against the dense FFN",
    "demo": "the main job: calibrate, export, build, validate on the built-in model",
}
