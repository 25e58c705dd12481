#!/usr/bin/env bash
# Compile the TdmBatMerge plugin (kernel + both wrappers) against the public TensorRT headers of several releases,
# without TensorRT libraries: CMake with TDM_OBJECTS_ONLY=ON, one build per release. Then list the entry points the
# library defines for that release and compare them with TensorRT's own plugin libraries of the release
# (plugin/common/vfcCommon.cpp, plugin/vc/vfcCommon.cpp): 8.5 getPluginCreators (and registration when loaded);
# 8.6 and 9 getPluginCreators + setLoggerFinder; 10 and 11 getCreators + setLoggerFinder. initTdmMergePlugins always.
# Loading itself (a stand-in registry that rejects double registration): tests/plugins/test_plugin_loading.py.
#
#   plugins/check_headers.sh MIRROR [SCRATCH]
#
# MIRROR: a git clone (or bare mirror) of github.com/NVIDIA/TensorRT; SCRATCH (default /tmp/tdm_trt_headers) receives
# the headers of each ref and the builds; nothing is written into this repository. Needs cmake, nvcc, g++.
set -euo pipefail
mirror=${1:?usage: $0 TENSORRT_GIT_MIRROR [SCRATCH]}
scratch=${2:-/tmp/tdm_trt_headers}
here=$(cd "$(dirname "$0")/tdm_merge" && pwd)
refs=(${REFS:-release/8.5 v8.6.1 v9.3.0 v10.3.0 v11.1})
archs=${CUDA_ARCHS:-87;90;110}
status=0

expected_entry_points() { # major minor -> the sorted entry points TensorRT's own plugin libraries export
  if [ "$1" -ge 10 ]; then echo "getCreators initTdmMergePlugins setLoggerFinder"
  elif [ "$1" -gt 8 ] || [ "$2" -ge 6 ]; then echo "getPluginCreators initTdmMergePlugins setLoggerFinder"
  else echo "getPluginCreators initTdmMergePlugins"; fi
}
for ref in "${refs[@]}"; do
  dir=$scratch/$(echo "$ref" | tr / -)
  mkdir -p "$dir/root"
  git -C "$mirror" archive "$ref" include | tar -x -C "$dir/root"
  version=$(grep -hE '#define (NV_TENSORRT_(MAJOR|MINOR|PATCH)|TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE) ' \
    "$dir/root/include/NvInferVersion.h" | awk '{print $3}' | grep -E '^[0-9]+$' | head -3 | paste -sd.)
  if cmake -S "$here" -B "$dir/build" -DTENSORRT_ROOT="$dir/root" -DTDM_OBJECTS_ONLY=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$archs" >"$dir/configure.log" 2>&1 \
     && cmake --build "$dir/build" -j 2 >"$dir/build.log" 2>&1; then
    major=${version%%.*}; minor=$(echo "$version" | cut -d. -f2)
    entry=$(find "$dir/build" -name 'batMergePlugins.cpp.o' | head -1)
    have=$(nm -g --defined-only "$entry" | awk '{print $3}' \
      | grep -xE 'getPluginCreators|getCreators|setLoggerFinder|initTdmMergePlugins' | sort | paste -sd' ' || true)
    want=$(expected_entry_points "$major" "$minor")
    if [ "$have" = "$want" ]; then
      echo "OK    $ref (NvInferVersion $version): kernel + IPluginV2DynamicExt$( [ "$major" -ge 10 ] && echo ' + IPluginV3') compiled, no warnings; entry points: $have"
    else
      echo "FAIL  $ref (NvInferVersion $version): entry points '$have', TensorRT's own libraries have '$want'"; status=1
    fi
  else
    echo "FAIL  $ref (NvInferVersion $version): see $dir/build.log"; status=1
  fi
done
exit $status
