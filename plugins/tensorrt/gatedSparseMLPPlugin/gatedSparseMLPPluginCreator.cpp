#include "gatedSparseMLPPluginCreator.h"

namespace gsmlp::trt::gated_sparse_mlp
{

GatedSparseMLPPluginCreator::GatedSparseMLPPluginCreator() noexcept
{
    // The ONNX parser passes exactly the node attributes named here, converted to these types.
    mFields[0] = nvinfer1::PluginField(kFIELD_BLOCK_SIZE, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFields[1] = nvinfer1::PluginField(kFIELD_THRESHOLD, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
    mFields[2] = nvinfer1::PluginField(kFIELD_BLOCK_MASK_OUTPUT, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldNames.nbFields = static_cast<int32_t>(mFields.size());
    mFieldNames.fields = mFields.data();
}

nvinfer1::PluginFieldCollection const* GatedSparseMLPPluginCreator::getFieldNames() noexcept
{
    return &mFieldNames;
}

} // namespace gsmlp::trt::gated_sparse_mlp
