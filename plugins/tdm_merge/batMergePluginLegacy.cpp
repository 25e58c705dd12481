/*
 * IPluginV2DynamicExt wrapper of the fused BAT merge stage (see batMergePluginLegacy.h).
 * Serialised form: the magic "TDM1" then n, c, keep, pairs, clusters, knn as int32 (28 bytes).
 */
#include "batMergePluginLegacy.h"

#include "batMergeChecks.h"
#include "batMergeLog.h"

#include <new>
#include <stdexcept>

namespace tdm
{
namespace plugin
{
namespace
{
constexpr int32_t kMagic{0x314d4454}; // "TDM1"
constexpr size_t kSerialBytes{sizeof(int32_t) * (1 + kNbFields)};
} // namespace

BatMergePluginLegacy::BatMergePluginLegacy(BatSizes const& sizes)
    : mSizes(sizes)
{
    if (validateSizes(mSizes) != 0)
        throw std::invalid_argument(batMergeSizeError(validateSizes(mSizes)));
}

BatMergePluginLegacy::BatMergePluginLegacy(void const* data, size_t length)
{
    std::array<int32_t, 1 + kNbFields> v{};
    if (data == nullptr || length != kSerialBytes)
        throw std::invalid_argument("serialised plugin has the wrong length");
    std::memcpy(v.data(), data, kSerialBytes);
    if (v[0] != kMagic)
        throw std::invalid_argument("not a serialised TdmBatMerge plugin");
    mSizes = BatSizes{v[1], v[2], v[3], v[4], v[5], v[6]};
    if (validateSizes(mSizes) != 0)
        throw std::invalid_argument(batMergeSizeError(validateSizes(mSizes)));
}

char const* BatMergePluginLegacy::getPluginType() const noexcept { return kPluginName; }
char const* BatMergePluginLegacy::getPluginVersion() const noexcept { return kLegacyVersion; }
int32_t BatMergePluginLegacy::getNbOutputs() const noexcept { return 1; }
int32_t BatMergePluginLegacy::initialize() noexcept { return 0; }
void BatMergePluginLegacy::terminate() noexcept {}
size_t BatMergePluginLegacy::getSerializationSize() const noexcept { return kSerialBytes; }

void BatMergePluginLegacy::serialize(void* buffer) const noexcept
{
    std::array<int32_t, kNbFields> const sizes = toArray(mSizes);
    std::memcpy(buffer, &kMagic, sizeof(int32_t));
    std::memcpy(static_cast<char*>(buffer) + sizeof(int32_t), sizes.data(), sizeof(int32_t) * kNbFields);
}

void BatMergePluginLegacy::destroy() noexcept { delete this; }

void BatMergePluginLegacy::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

char const* BatMergePluginLegacy::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

nvinfer1::DataType BatMergePluginLegacy::getOutputDataType(
    int32_t /* index */, nvinfer1::DataType const* inputTypes, int32_t /* nbInputs */) const noexcept
{
    return inputTypes[0];
}

nvinfer1::IPluginV2DynamicExt* BatMergePluginLegacy::clone() const noexcept
{
    auto* plugin = new (std::nothrow) BatMergePluginLegacy(*this);
    return plugin;
}

nvinfer1::DimsExprs BatMergePluginLegacy::getOutputDimensions(int32_t /* outputIndex */,
    nvinfer1::DimsExprs const* inputs, int32_t /* nbInputs */, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    return outputDims(mSizes, inputs[0], exprBuilder);
}

bool BatMergePluginLegacy::supportsFormatCombination(
    int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return nbInputs == 2 && nbOutputs == 1 && pos >= 0 && pos < 3 && formatSupported(inOut, pos);
}

void BatMergePluginLegacy::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || !dimsMatch(mSizes, in[0].desc.dims, in[1].desc.dims))
        logError("configurePlugin: inputs do not have the stage's shapes [B, n, c] and [B, n-1]");
}

size_t BatMergePluginLegacy::getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t /* nbInputs */,
    nvinfer1::PluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    return batMergeWorkspaceSize(mSizes, static_cast<int32_t>(inputs[0].dims.d[0]));
}

int32_t BatMergePluginLegacy::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    if (!enqueueDescsMatch(mSizes, inputDesc, outputDesc))
        return 1;
    cudaError_t const status = batMergeForward(mSizes, static_cast<int32_t>(inputDesc[0].dims.d[0]),
        tokenType(inputDesc[0].type), inputs[0], inputs[1], outputs[0], workspace, stream);
    if (status != cudaSuccess)
        logError((std::string("enqueue: launch failed: ") + cudaGetErrorString(status)).c_str());
    return status == cudaSuccess ? 0 : 1;
}

BatMergePluginLegacyCreator::BatMergePluginLegacyCreator()
{
    for (char const* name : kFieldNames)
        mAttributes.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mAttributes.size());
    mFC.fields = mAttributes.data();
}

char const* BatMergePluginLegacyCreator::getPluginName() const noexcept { return kPluginName; }
char const* BatMergePluginLegacyCreator::getPluginVersion() const noexcept { return kLegacyVersion; }
nvinfer1::PluginFieldCollection const* BatMergePluginLegacyCreator::getFieldNames() noexcept { return &mFC; }

nvinfer1::IPluginV2* BatMergePluginLegacyCreator::createPlugin(
    char const* /* name */, nvinfer1::PluginFieldCollection const* fc) noexcept
{
    BatSizes sizes{};
    if (!sizesFromFields(fc, sizes))
    {
        logError("createPlugin: needs the INT32 fields n, c, keep, pairs, clusters, knn of a valid stage");
        return nullptr;
    }
    auto* plugin = new (std::nothrow) BatMergePluginLegacy(sizes);
    if (plugin != nullptr)
        plugin->setPluginNamespace(mNamespace.c_str());
    return plugin;
}

nvinfer1::IPluginV2* BatMergePluginLegacyCreator::deserializePlugin(
    char const* /* name */, void const* serialData, size_t serialLength) noexcept
{
    try
    {
        auto* plugin = new BatMergePluginLegacy(serialData, serialLength);
        plugin->setPluginNamespace(mNamespace.c_str());
        return plugin;
    }
    catch (std::exception const& e)
    {
        logError((std::string("deserializePlugin: ") + e.what()).c_str());
        return nullptr;
    }
}

void BatMergePluginLegacyCreator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace == nullptr ? "" : pluginNamespace;
}

char const* BatMergePluginLegacyCreator::getPluginNamespace() const noexcept { return mNamespace.c_str(); }

} // namespace plugin
} // namespace tdm
