/*
 * Entry points of the plugin library (libtdm_merge_plugin.so), exactly as TensorRT's own plugin libraries have them
 * per release (plugin/common/vfcCommon.cpp at v8.6.1, v9.3.0, v10.3.0; plugin/vc/vfcCommon.cpp at v11.1), so that
 * no loader registers a creator twice (a second registration of a name/version/namespace fails the whole load):
 *
 *   TensorRT 8.5     static registration when the library is loaded (what REGISTER_TENSORRT_PLUGIN does:
 *                    `trtexec --plugins`, a bare ctypes.CDLL) + getPluginCreators (8.5 itself never calls it)
 *   TensorRT 8.6, 9  getPluginCreators + setLoggerFinder (IPluginRegistry::loadLibrary, `trtexec --dynamicPlugins`)
 *   TensorRT 10, 11  getCreators (the IPluginV2DynamicExt creator, version "1", and the IPluginV3 one, version "2")
 *                    + setLoggerFinder; no getPluginCreators (10.x's loader would register version "1" twice)
 *
 * On 8.6+ nothing registers itself: load the library through the registry (loadLibrary / load_library /
 * --dynamicPlugins), or dlopen it and call initTdmMergePlugins(logger, namespace), which registers each creator
 * once per namespace and skips those already in the registry (so calling it after loadLibrary is harmless).
 */
#include "batMergeLog.h"
#include "batMergePlugin.h"
#include "batMergePluginLegacy.h"

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#define TDM_TRT_AT_LEAST(major, minor)                                                                                \
    (NV_TENSORRT_MAJOR > (major) || (NV_TENSORRT_MAJOR == (major) && NV_TENSORRT_MINOR >= (minor)))

namespace tdm
{
namespace plugin
{
namespace
{

std::mutex gMutex;
nvinfer1::ILogger* gLogger{nullptr}; // from initTdmMergePlugins
#if TDM_TRT_AT_LEAST(8, 6)
nvinfer1::ILoggerFinder* gLoggerFinder{nullptr}; // from setLoggerFinder: the first non-null one, as TensorRT's
#endif

nvinfer1::ILogger* currentLogger() noexcept
{
    std::lock_guard<std::mutex> lock(gMutex);
#if TDM_TRT_AT_LEAST(8, 6)
    if (gLoggerFinder != nullptr)
        if (nvinfer1::ILogger* logger = gLoggerFinder->findLogger())
            return logger;
#endif
    return gLogger;
}

//! The creators of this library in the registry, one per namespace and version (initTdmMergePlugins' own).
struct Registered
{
    std::string key;
    bool ok{false};
    std::unique_ptr<BatMergePluginLegacyCreator> legacy;
#if NV_TENSORRT_MAJOR >= 10
    std::unique_ptr<BatMergePluginCreator> v3;
#endif
};
std::vector<Registered> gRegistered;

//! Registers `creator` under `ns` unless the registry has that name and version there already. True when it is
//! in the registry afterwards.
template <typename Creator>
bool registerOnce(Creator& creator, char const* ns) noexcept
{
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    std::string const what = std::string(ns) + "::" + kPluginName + " version " + creator.getPluginVersion();
    if (registry == nullptr)
    {
        logError(("no plugin registry to register " + what).c_str());
        return false;
    }
#if NV_TENSORRT_MAJOR >= 10
    bool const present = registry->getCreator(kPluginName, creator.getPluginVersion(), ns) != nullptr;
#else
    bool const present = registry->getPluginCreator(kPluginName, creator.getPluginVersion(), ns) != nullptr;
#endif
    if (present)
    {
        logMessage(nvinfer1::ILogger::Severity::kVERBOSE, ("already registered: " + what).c_str());
        return true;
    }
#if NV_TENSORRT_MAJOR >= 10
    bool const added = registry->registerCreator(static_cast<nvinfer1::IPluginCreatorInterface&>(creator), ns);
#else
    bool const added = registry->registerCreator(creator, ns);
#endif
    if (!added)
    {
        logError(("could not register " + what).c_str());
        return false;
    }
    logMessage(nvinfer1::ILogger::Severity::kVERBOSE, ("registered " + what).c_str());
    return true;
}

} // namespace

void logMessage(nvinfer1::ILogger::Severity severity, char const* message) noexcept
{
    std::string const text = std::string("TdmBatMerge: ") + message;
    if (nvinfer1::ILogger* logger = currentLogger())
        logger->log(severity, text.c_str());
    else if (severity <= nvinfer1::ILogger::Severity::kERROR)
        std::fprintf(stderr, "%s\n", text.c_str());
}

} // namespace plugin
} // namespace tdm

namespace
{
// The creators the entry points hand to TensorRT's loader (namespace "").
tdm::plugin::BatMergePluginLegacyCreator gLegacyCreator;
#if NV_TENSORRT_MAJOR >= 10
tdm::plugin::BatMergePluginCreator gV3Creator;
#endif
} // namespace

extern "C"
{

#if TDM_TRT_AT_LEAST(8, 6)
TENSORRTAPI void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(tdm::plugin::gMutex);
    if (tdm::plugin::gLoggerFinder == nullptr && finder != nullptr)
        tdm::plugin::gLoggerFinder = finder;
}
#endif

#if NV_TENSORRT_MAJOR >= 10
TENSORRTAPI nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&gLegacyCreator, &gV3Creator};
    nbCreators = 2;
    return creators;
}
#else
TENSORRTAPI nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreator* const creators[] = {&gLegacyCreator};
    nbCreators = 1;
    return creators;
}
#endif

//! Registers the creators under `libNamespace` (null: ""), each once; `logger` (an nvinfer1::ILogger*, may be null)
//! receives the library's messages when TensorRT has handed over no logger finder. True when all are registered.
TENSORRTAPI bool initTdmMergePlugins(void* logger, char const* libNamespace)
{
    using namespace tdm::plugin;
    char const* ns = libNamespace == nullptr ? "" : libNamespace;
    if (logger != nullptr)
    {
        std::lock_guard<std::mutex> lock(gMutex);
        gLogger = static_cast<nvinfer1::ILogger*>(logger);
    }
    static std::mutex initMutex;
    std::lock_guard<std::mutex> lock(initMutex);
    for (Registered const& r : gRegistered)
        if (r.key == ns && r.ok)
            return true;
    Registered r;
    r.key = ns;
    r.legacy.reset(new BatMergePluginLegacyCreator());
    r.legacy->setPluginNamespace(ns);
    bool ok = registerOnce(*r.legacy, ns);
#if NV_TENSORRT_MAJOR >= 10
    r.v3.reset(new BatMergePluginCreator());
    r.v3->setPluginNamespace(ns);
    ok = registerOnce(*r.v3, ns) && ok;
#endif
    r.ok = ok;
    gRegistered.push_back(std::move(r)); // kept for the life of the process (even half-registered): the registry
    return ok;                           // points at them
}

} // extern "C"

#if !TDM_TRT_AT_LEAST(8, 6)
namespace
{
// TensorRT 8.5: register when loaded, through the same bookkeeping, so a later initTdmMergePlugins(logger, "") is a
// no-op instead of a second registration.
struct StaticRegistration
{
    StaticRegistration() { initTdmMergePlugins(nullptr, ""); }
} const gStaticRegistration;
} // namespace
#endif
