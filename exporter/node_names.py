"""How an exported GatedSparseMLP node is named, and the module path that its name leads back to.

The TorchScript exporter names each node after the module path it was traced in, under the wrapper module
that export.py traces: '/detector/model/encoder/layers.0/mlp/GatedSparseMLP'. The wrapper's attribute name
and the parsing of node names live here together, so that they cannot drift apart.
"""

from __future__ import annotations

from gsmlp.op_identity import OP_TYPE

# The attribute of the traced wrapper module that holds the detector: the first part of every node name.
TRACE_ROOT = "detector"


def module_path(node_name: str) -> str | None:
    """'/detector/model/encoder/layers.0/mlp/GatedSparseMLP' -> 'model.encoder.layers.0.mlp'.

    None for a node that gsmlp's exporter did not name (it cannot be traced back to a module).
    """
    parts = node_name.strip("/").split("/")
    if len(parts) < 3 or parts[0] != TRACE_ROOT or parts[-1] != OP_TYPE:
        return None
    return ".".join(parts[1:-1])
