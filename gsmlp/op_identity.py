"""Who the gsmlp ops (`GatedSparseMLP`, `MultiScaleDeformableAttention`) are, in one place (docs/op_spec.md):
what the exporter writes into every ONNX file, what the TensorRT plugin and the ONNX Runtime op library
register, and what their Python callers look for. Plain constants, no imports: deploy-time code
(gsmlp.runtime) reads them without torch or onnx. It sits beside gsmlp.errors, below every stage, so that
the exporter (which writes the identity), the runtime and validation (which look for it) share it without
importing one another.

The C++ plugins repeat these values (kPLUGIN_NAME, kDOMAIN, ...); tests load each plugin through the values
below, so a plugin that drifts from them fails its tests.
"""

DOMAIN = "gsmlp"
# The default ONNX domain's opset of every file gsmlp exports and of every local function body in it: a
# function's opset must be the model's, and TensorRT 10+ and ONNX Runtime 1.16+ read 17.
ONNX_OPSET = 17
OP_TYPE = "GatedSparseMLP"
DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
INPUTS = ("X", "W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias")
# Output 1 is optional: the per-token block decisions, present where the node carries block_mask_output=1.
OUTPUTS = ("Y", "BlockMask")
ATTRIBUTES = ("block_size", "threshold", "plugin_version", "plugin_namespace")
BLOCK_MASK_ATTRIBUTE = "block_mask_output"
# Graph outputs that carry a node's BlockMask in a copy made for checking (exporter.graph.expose_block_masks):
# this prefix, then the node's name. Validation reads each backend's own gate decisions from them.
BLOCK_MASK_OUTPUT_PREFIX = "gsmlp.block_mask:"

# The second op, `MultiScaleDeformableAttention` (docs/op_spec.md): Deformable DETR's multi-scale sampling.
# Same domain, domain version, plugin version and namespace as GatedSparseMLP; no attributes of its own.
MSDA_OP_TYPE = "MultiScaleDeformableAttention"
MSDA_INPUTS = ("value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights")
MSDA_OUTPUTS = ("output",)
MSDA_ATTRIBUTES = ("plugin_version", "plugin_namespace")
