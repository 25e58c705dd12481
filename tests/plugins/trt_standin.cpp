/*
 * A stand-in for TensorRT's plugin loading, compiled against the public headers of one TensorRT release
 * (tests/plugins/test_plugin_loading.py): it exports getPluginRegistry() with a registry that REJECTS a second
 * registration of a name/version/namespace (as TensorRT's does, failing the load), dlopens
 * libtdm_merge_plugin.so and does what that release's loaders do:
 *   8.5       dlopen only (`trtexec --plugins`): the library must register itself
 *   8.6, 9    IPluginRegistry::loadLibrary: setLoggerFinder, then every creator of getPluginCreators
 *   10, 11    the same with getCreators; creators of a getPluginCreators exported too are registered as well, so
 *             a library exporting both shows up as a double registration
 * then calls initTdmMergePlugins, checks where the library logs, and enqueues both plugin versions on the CPU (the
 * kernel built with plugins/cudacpu) against the host build of the same stage. One result per line on stdout.
 * Not TensorRT: only the loading contract read from its sources (plugin/common/vfcCommon.cpp, samples/trtexec).
 */
#include "NvInfer.h"
#include "batMerge.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#define AT_LEAST(major, minor)                                                                                        \
    (NV_TENSORRT_MAJOR > (major) || (NV_TENSORRT_MAJOR == (major) && NV_TENSORRT_MINOR >= (minor)))

using namespace nvinfer1;

namespace
{

struct Entry
{
    std::string name, version, ns;
    void* creator; // IPluginCreator* (kind "1") or IPluginCreatorV3One* (kind "3")
    char kind;
};

class StandInRegistry : public IPluginRegistry
{
public:
    std::vector<Entry> entries;
    int rejected = 0;

    bool add(std::string name, std::string version, char const* ns, void* creator, char kind)
    {
        std::string const space = ns == nullptr ? "" : ns;
        for (Entry const& e : entries)
            if (e.name == name && e.version == version && e.ns == space)
            {
                ++rejected;
                std::printf("rejected %s::%s/%s\n", space.c_str(), name.c_str(), version.c_str());
                return false;
            }
        entries.push_back(Entry{name, version, space, creator, kind});
        return true;
    }

    void* find(char const* name, char const* version, char const* ns, char kind = 0) const
    {
        for (Entry const& e : entries)
            if (e.name == name && e.version == version && e.ns == (ns == nullptr ? "" : ns) && (!kind || e.kind == kind))
                return e.creator;
        return nullptr;
    }

    // every method of every release (those a release lacks are plain members there)
    bool registerCreator(IPluginCreator& creator, AsciiChar const* const ns) noexcept
    {
        return add(creator.getPluginName(), creator.getPluginVersion(), ns, &creator, '1');
    }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept
    {
        *n = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const ns = "") noexcept
    {
        return static_cast<IPluginCreator*>(find(name, version, ns, '1'));
    }
    void setErrorRecorder(IErrorRecorder* const) noexcept {}
    IErrorRecorder* getErrorRecorder() const noexcept { return nullptr; }
    bool deregisterCreator(IPluginCreator const&) noexcept { return false; }
#if AT_LEAST(8, 6)
    bool isParentSearchEnabled() const { return false; }
    void setParentSearchEnabled(bool const) {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept {}
#endif
#if NV_TENSORRT_MAJOR >= 10
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept
    {
        std::string const kind = creator.getInterfaceInfo().kind;
        if (kind == "PLUGIN CREATOR_V1")
            return registerCreator(static_cast<IPluginCreator&>(creator), ns);
        if (kind == "PLUGIN CREATOR_V3ONE")
        {
            auto& v3 = static_cast<IPluginCreatorV3One&>(creator);
            return add(v3.getPluginName(), v3.getPluginVersion(), ns, &v3, '3');
        }
        std::printf("unknown creator kind %s\n", kind.c_str());
        return false;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept
    {
        *n = 0;
        return nullptr;
    }
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept
    {
        *n = 0;
        return nullptr;
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const ns = "") noexcept
    {
        for (Entry const& e : entries)
            if (e.name == name && e.version == version && e.ns == (ns == nullptr ? "" : ns))
                return e.kind == '1' ? static_cast<IPluginCreatorInterface*>(static_cast<IPluginCreator*>(e.creator))
                                     : static_cast<IPluginCreatorInterface*>(
                                         static_cast<IPluginCreatorV3One*>(e.creator));
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const&) noexcept { return false; }
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept { return 0; }
#endif
};

StandInRegistry* gRegistry = new StandInRegistry(); // never destroyed

class StandInLogger : public ILogger
{
public:
    explicit StandInLogger(char const* name) : mName(name) {}
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kERROR)
            std::printf("log %s error %s\n", mName, msg);
    }

private:
    char const* mName;
};

StandInLogger gFinderLogger("finder"), gInitLogger("init");

#if AT_LEAST(8, 6)
class StandInFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() override { return &gFinderLogger; }
};
StandInFinder gFinder;
#endif

void printRegistry(char const* when)
{
    std::printf("%s", when);
    for (Entry const& e : gRegistry->entries)
        std::printf(" %s::%s/%s", e.ns.c_str(), e.name.c_str(), e.version.c_str());
    std::printf(" | rejected %d\n", gRegistry->rejected);
}

PluginTensorDesc desc(std::vector<int64_t> const& dims)
{
    PluginTensorDesc d{};
    d.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
        d.dims.d[i] = static_cast<std::remove_reference_t<decltype(d.dims.d[0])>>(dims[i]);
    d.type = DataType::kFLOAT;
    d.format = TensorFormat::kLINEAR;
    d.scale = 1.0f;
    return d;
}

std::vector<PluginField> fields(tdm::BatSizes const& s, std::vector<int32_t>& storage)
{
    storage = {s.n, s.c, s.keep, s.pairs, s.clusters, s.knn};
    char const* names[] = {"n", "c", "keep", "pairs", "clusters", "knn"};
    std::vector<PluginField> f;
    for (int i = 0; i < 6; ++i)
        f.emplace_back(names[i], &storage[i], PluginFieldType::kINT32, 1);
    return f;
}

//! A small stage: inputs, the host build's output, and a runner that checks a plugin's enqueue against it.
struct Stage
{
    tdm::BatSizes s{33, 16, 16, 4, 4, 5};
    int32_t batch = 2;
    std::vector<float> x, w, want;

    Stage()
    {
        x.resize(size_t(batch) * s.n * s.c);
        w.resize(size_t(batch) * (s.n - 1));
        uint32_t state = 12345;
        auto next = [&state]() {
            state = state * 1664525u + 1013904223u;
            return static_cast<float>(state >> 8) / 16777216.0f;
        };
        for (float& v : x)
            v = next() * 2.0f - 1.0f;
        for (float& v : w)
            v = next();
        want.resize(size_t(batch) * tdm::outputTokens(s) * s.c);
        std::vector<char> ws(tdm::workspaceBytes(s) * batch + 16);
        tdm::batMergeHost(s, batch, x.data(), w.data(), want.data(), ws.data());
    }

    //! Runs enqueue(in, out, inputs, outputs, workspace, stream) with the right or a wrong output shape.
    template <typename Enqueue>
    void check(char const* label, size_t workspaceBytes, Enqueue enqueue, bool wrongOutput = false) const
    {
        int32_t const nOut = tdm::outputTokens(s) + (wrongOutput ? 1 : 0);
        PluginTensorDesc in[2] = {desc({batch, s.n, s.c}), desc({batch, s.n - 1})};
        PluginTensorDesc out[1] = {desc({batch, nOut, s.c})};
        std::vector<float> got(size_t(batch) * nOut * s.c, -7.0f);
        std::vector<unsigned char> ws(workspaceBytes, 0xFF); // never zeroed on a GPU
        void const* inputs[2] = {x.data(), w.data()};
        void* outputs[1] = {got.data()};
        int32_t const rc = enqueue(in, out, inputs, outputs, ws.data());
        bool const equal = !wrongOutput && rc == 0 && std::memcmp(got.data(), want.data(), want.size() * 4) == 0;
        std::printf("%s rc %d %s\n", label, rc, equal ? "equal" : "differs");
    }
};

} // namespace

extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    return gRegistry;
}

//! The registry as one line (for a Python process that loaded this stand-in as a library: tests of trt_env).
extern "C" __attribute__((visibility("default"))) char const* standin_registry_text()
{
    static std::string text;
    text.clear();
    for (Entry const& e : gRegistry->entries)
        text += e.ns + "::" + e.name + "/" + e.version + " ";
    text += "| rejected " + std::to_string(gRegistry->rejected);
    return text.c_str();
}

template <typename F>
F symbol(void* lib, char const* name)
{
    return reinterpret_cast<F>(dlsym(lib, name));
}

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s libtdm_merge_plugin.so\n", argv[0]);
        return 2;
    }
    // the stand-in's own rule, checked before it judges the library
    int dummy = 0;
    gRegistry->add("X", "1", "", &dummy, '1');
    bool const second = gRegistry->add("X", "1", "", &dummy, '1');
    std::printf("selftest double %s\n", second ? "accepted" : "rejected");
    gRegistry->entries.clear();
    gRegistry->rejected = 0;

    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::printf("dlopen failed %s\n", dlerror());
        return 1;
    }
    std::printf("exports");
    for (char const* name : {"getPluginCreators", "getCreators", "setLoggerFinder", "initTdmMergePlugins"})
        if (dlsym(lib, name) != nullptr)
            std::printf(" %s", name);
    std::printf("\n");
    printRegistry("after_dlopen");

#if AT_LEAST(8, 6)
    if (auto setFinder = symbol<void (*)(ILoggerFinder*)>(lib, "setLoggerFinder"))
        setFinder(&gFinder);
#if NV_TENSORRT_MAJOR >= 10
    if (auto get = symbol<IPluginCreatorInterface* const* (*) (int32_t&)>(lib, "getCreators"))
    {
        int32_t n = 0;
        IPluginCreatorInterface* const* list = get(n);
        for (int32_t i = 0; i < n; ++i)
            gRegistry->registerCreator(*list[i], "");
    }
#endif
    if (auto get = symbol<IPluginCreator* const* (*) (int32_t&)>(lib, "getPluginCreators"))
    {
        int32_t n = 0;
        IPluginCreator* const* list = get(n);
        for (int32_t i = 0; i < n; ++i)
            gRegistry->registerCreator(*list[i], "");
    }
#endif
    printRegistry("after_load");

    auto init = symbol<bool (*)(void*, char const*)>(lib, "initTdmMergePlugins");
    std::printf("init_default %d\n", init != nullptr && init(&gInitLogger, "") ? 1 : 0);
    std::printf("init_ns2 %d\n", init != nullptr && init(&gInitLogger, "ns2") ? 1 : 0);
    printRegistry("after_init");

    // logging: a creator given no fields logs an error through the logger TensorRT handed over
    auto* legacy = static_cast<IPluginCreator*>(gRegistry->find("TdmBatMerge", "1", "", '1'));
    if (legacy == nullptr)
    {
        std::printf("no version 1 creator\n");
        return 1;
    }
    PluginFieldCollection empty{};
    std::printf("create_empty %s\n", legacy->createPlugin("stage", &empty) == nullptr ? "null" : "plugin");

    Stage const stage;
    std::vector<int32_t> storage;
    std::vector<PluginField> f = fields(stage.s, storage);
    PluginFieldCollection fc{static_cast<int32_t>(f.size()), f.data()};
    auto* v2 = static_cast<IPluginV2DynamicExt*>(legacy->createPlugin("stage", &fc));
    PluginTensorDesc in[2] = {desc({stage.batch, stage.s.n, stage.s.c}), desc({stage.batch, stage.s.n - 1})};
    PluginTensorDesc out[1] = {desc({stage.batch, tdm::outputTokens(stage.s), stage.s.c})};
    size_t const wsBytes = v2->getWorkspaceSize(in, 2, out, 1);
    for (bool wrong : {false, true})
        stage.check(wrong ? "enqueue_v1_wrong_output" : "enqueue_v1", wsBytes,
            [&](PluginTensorDesc const* i, PluginTensorDesc const* o, void const* const* a, void* const* b, void* w) {
                return v2->enqueue(i, o, a, b, w, nullptr);
            },
            wrong);
    std::vector<char> blob(v2->getSerializationSize());
    v2->serialize(blob.data());
    IPluginV2* back = legacy->deserializePlugin("stage", blob.data(), blob.size());
    std::printf("deserialize %s\n", back != nullptr && back->getSerializationSize() == blob.size() ? "ok" : "failed");
    std::printf("deserialize_garbage %s\n", legacy->deserializePlugin("stage", "xx", 2) == nullptr ? "null" : "plugin");
    v2->destroy();
    if (back != nullptr)
        back->destroy();

#if NV_TENSORRT_MAJOR >= 10
    auto* v3creator = static_cast<IPluginCreatorV3One*>(gRegistry->find("TdmBatMerge", "2", "", '3'));
    if (v3creator != nullptr)
    {
        IPluginV3* original = v3creator->createPlugin("stage", &fc, TensorRTPhase::kRUNTIME);
        IPluginV3* v3 = original->clone();
        delete original; // the clone must not point into it
        auto* runtime = static_cast<IPluginV3OneRuntime*>(v3->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* serial = runtime->getFieldsToSerialize();
        bool same = serial->nbFields == 6;
        for (int32_t i = 0; same && i < 6; ++i)
            same = *static_cast<int32_t const*>(serial->fields[i].data) == storage[i];
        std::printf("v3_clone_fields %s\n", same ? "ok" : "wrong");
        for (bool wrong : {false, true})
            stage.check(wrong ? "enqueue_v3_wrong_output" : "enqueue_v3", wsBytes,
                [&](PluginTensorDesc const* i, PluginTensorDesc const* o, void const* const* a, void* const* b,
                    void* w) { return runtime->enqueue(i, o, a, b, w, nullptr); },
                wrong);
        delete v3;
    }
#endif
    std::printf("done\n");
    return 0;
}
