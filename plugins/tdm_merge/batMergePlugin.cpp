/*
 * IPluginV3 wrapper of the fused BAT merge stage (see batMergePlugin.h). Serialised form: the six sizes as kINT32
 * fields, read back by the creator in the runtime phase.
 */
#include "batMergePlugin.h"

#include "batMergeChecks.h"
#include "batMergeLog.h"

#if NV_TENSORRT_MAJOR >= 10

#include <new>

namespace tdm
{
namespace plugin
{

BatMergePlugin::BatMergePlugin(BatSizes const& sizes)
    : mSizes(sizes)
{
}

nvinfer1::IPluginCapability* BatMergePlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* BatMergePlugin::clone() noexcept
{
    auto* plugin = new (std::nothrow) BatMergePlugin(mSizes);
    if (plugin != nullptr)
        plugin->setPluginNamespace(mNamespace.c_str());
    return plugin;
}

char const* BatMergePlugin::getPluginName() const noexcept { return kPluginName; }
char const* BatMergePlugin::getPluginVersion() const noexcept { return kV3Version; }
char const* BatMergePlugin::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

void BatMergePlugin::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

int32_t BatMergePlugin::getNbOutputs() const noexcept { return 1; }

int32_t BatMergePlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (nbInputs == 2 && nbOutputs == 1 && dimsMatch(mSizes, in[0].desc.dims, in[1].desc.dims))
        return 0;
    logError("configurePlugin: inputs do not have the stage's shapes [B, n, c] and [B, n-1]");
    return -1;
}

int32_t BatMergePlugin::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != 1 || nbInputs != 2)
        return -1;
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t BatMergePlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || inputs[0].nbDims != 3)
        return -1;
    outputs[0] = outputDims(mSizes, inputs[0], exprBuilder);
    return 0;
}

bool BatMergePlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2)
        return false;
    nvinfer1::PluginTensorDesc descs[3];
    for (int32_t i = 0; i <= pos; ++i)
        descs[i] = inOut[i].desc;
    return formatSupported(descs, pos);
}

size_t BatMergePlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t /* nbInputs */,
    nvinfer1::DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    return batMergeWorkspaceSize(mSizes, static_cast<int32_t>(inputs[0].max.d[0]));
}

int32_t BatMergePlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (nbInputs == 2 && nbOutputs == 1 && dimsMatch(mSizes, in[0].dims, in[1].dims))
        return 0;
    logError("onShapeChange: inputs do not have the stage's shapes [B, n, c] and [B, n-1]");
    return -1;
}

int32_t BatMergePlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    if (!enqueueDescsMatch(mSizes, inputDesc, outputDesc)) // TensorRT checked them at build time; dims come at run
        return -1;
    cudaError_t const status = batMergeForward(mSizes, static_cast<int32_t>(inputDesc[0].dims.d[0]),
        tokenType(inputDesc[0].type), inputs[0], inputs[1], outputs[0], workspace, stream);
    if (status != cudaSuccess)
        logError((std::string("enqueue: launch failed: ") + cudaGetErrorString(status)).c_str());
    return status == cudaSuccess ? 0 : -1;
}

nvinfer1::IPluginV3* BatMergePlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    return clone();
}

nvinfer1::PluginFieldCollection const* BatMergePlugin::getFieldsToSerialize() noexcept
{
    mSerialValues = toArray(mSizes);
    mSerialFields.clear();
    for (int32_t k = 0; k < kNbFields; ++k)
        mSerialFields.emplace_back(kFieldNames[k], &mSerialValues[k], nvinfer1::PluginFieldType::kINT32, 1);
    mSerialFC.nbFields = static_cast<int32_t>(mSerialFields.size());
    mSerialFC.fields = mSerialFields.data();
    return &mSerialFC;
}

BatMergePluginCreator::BatMergePluginCreator()
{
    for (char const* name : kFieldNames)
        mAttributes.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mAttributes.size());
    mFC.fields = mAttributes.data();
}

char const* BatMergePluginCreator::getPluginName() const noexcept { return kPluginName; }
char const* BatMergePluginCreator::getPluginVersion() const noexcept { return kV3Version; }
nvinfer1::PluginFieldCollection const* BatMergePluginCreator::getFieldNames() noexcept { return &mFC; }

nvinfer1::IPluginV3* BatMergePluginCreator::createPlugin(
    char const* /* name */, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /* phase */) noexcept
{
    BatSizes sizes{};
    if (!sizesFromFields(fc, sizes)) // the same fields at build time (ONNX attributes) and at runtime (serialised)
    {
        logError("createPlugin: needs the INT32 fields n, c, keep, pairs, clusters, knn of a valid stage");
        return nullptr;
    }
    auto* plugin = new (std::nothrow) BatMergePlugin(sizes);
    if (plugin != nullptr)
        plugin->setPluginNamespace(mNamespace.c_str());
    return plugin;
}

char const* BatMergePluginCreator::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

void BatMergePluginCreator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

} // namespace plugin
} // namespace tdm

#endif // NV_TENSORRT_MAJOR >= 10
