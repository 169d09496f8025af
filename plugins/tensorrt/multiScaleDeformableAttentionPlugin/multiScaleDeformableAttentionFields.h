/* The plugin's fields. MultiScaleDeformableAttention has no attributes of its own (docs/op_spec.md): the ONNX
 * parser passes only the node's plugin_version ("1") and plugin_namespace ("") as kCHAR fields, which are
 * checked; any other field is an error, so a node of another op's shape never passes for this one. */
#ifndef GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_FIELDS_H
#define GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_FIELDS_H

#include "common/pluginFields.h"

#include <NvInferRuntime.h>

#include <string>

namespace gsmlp::trt::msda
{

constexpr char const* kPLUGIN_NAME{"MultiScaleDeformableAttention"};

//! No parameters: the shapes carry everything (kept as a type so the plugin reads like the others).
struct MsdaParams
{
};

//! Parses `fields` (may be empty or null: the engine serializes none). "" on success, else a message.
std::string parseFields(nvinfer1::PluginFieldCollection const* fields, MsdaParams& params);

//! The timing-cache ID suffix (TensorRT adds the I/O shapes and formats itself).
std::string timingCacheId();

} // namespace gsmlp::trt::msda

#endif // GSMLP_TRT_MULTI_SCALE_DEFORMABLE_ATTENTION_FIELDS_H
