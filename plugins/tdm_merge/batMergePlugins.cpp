/*
 * Entry points of the plugin library (libtdm_merge_plugin.so):
 *  - getPluginCreators / setLoggerFinder: what IPluginRegistry::loadLibrary and `trtexec --plugins` look for
 *    (TensorRT 8.5+; the IPluginV2DynamicExt creator);
 *  - getCreators (TensorRT 10+): both creators, so the IPluginV3 version is found too;
 *  - initTdmMergePlugins: registers the creators with the global registry, for programs that dlopen the library
 *    (Python: ctypes.CDLL(path).initTdmMergePlugins(None, b"")).
 * TensorRT 8.5 has no loadLibrary: there the library registers its creator when loaded (as TensorRT's
 * REGISTER_TENSORRT_PLUGIN does), so `trtexec --plugins=libtdm_merge_plugin.so` and ctypes.CDLL both work.
 */
#include "batMergePlugin.h"
#include "batMergePluginLegacy.h"

namespace
{
tdm::plugin::BatMergePluginLegacyCreator gLegacyCreator;
#if NV_TENSORRT_MAJOR >= 10
tdm::plugin::BatMergePluginCreator gV3Creator;
#endif
} // namespace

extern "C"
{

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
void setLoggerFinder(nvinfer1::ILoggerFinder* /* finder */) {}
#endif

nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreator* const creators[] = {&gLegacyCreator};
    nbCreators = 1;
    return creators;
}

#if NV_TENSORRT_MAJOR >= 10
nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&gLegacyCreator, &gV3Creator};
    nbCreators = 2;
    return creators;
}
#endif

//! Registers the creators under `libNamespace` (may be null); true when all registered.
bool initTdmMergePlugins(void* /* logger */, char const* libNamespace)
{
    char const* ns = libNamespace == nullptr ? "" : libNamespace;
    gLegacyCreator.setPluginNamespace(ns);
    bool ok = getPluginRegistry()->registerCreator(gLegacyCreator, ns);
#if NV_TENSORRT_MAJOR >= 10
    gV3Creator.setPluginNamespace(ns);
    ok = getPluginRegistry()->registerCreator(gV3Creator, ns) && ok;
#endif
    return ok;
}

} // extern "C"

#if NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 6
namespace
{
struct StaticRegistration
{
    StaticRegistration() { initTdmMergePlugins(nullptr, ""); }
} const gStaticRegistration;
} // namespace
#endif
