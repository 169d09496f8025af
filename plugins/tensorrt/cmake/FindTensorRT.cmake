# FindTensorRT: the TensorRT headers (always needed) and libraries (only where they are installed).
#
# Looks in TensorRT_ROOT (CMake variable or environment variable; either the TensorRT root or its include/
# folder), then in the usual install paths (Debian/Ubuntu packages, tar files unpacked into /usr/local or /opt).
#
# Sets TensorRT_FOUND (headers found), TensorRT_INCLUDE_DIR, TensorRT_VERSION (from NvInferVersion.h),
# TensorRT_nvinfer_LIBRARY (may be NOTFOUND), and the imported targets
#   TensorRT::headers  the headers, as SYSTEM includes, so that -Werror applies to our code only
#   TensorRT::nvinfer  the runtime library, only where libnvinfer was found
# The plugin needs only TensorRT::headers: it talks to TensorRT through interfaces TensorRT hands it.

set(_trt_hints ${TensorRT_ROOT} $ENV{TensorRT_ROOT})
set(_trt_paths /usr/local/TensorRT /usr/local/tensorrt /opt/tensorrt /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu)

find_path(TensorRT_INCLUDE_DIR NvInfer.h
  HINTS ${_trt_hints}
  PATHS ${_trt_paths}
  PATH_SUFFIXES include include/x86_64-linux-gnu include/aarch64-linux-gnu)

find_library(TensorRT_nvinfer_LIBRARY
  NAMES nvinfer nvinfer_11 nvinfer_10
  HINTS ${_trt_hints}
  PATHS ${_trt_paths}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu targets/x86_64-linux-gnu/lib)

set(TensorRT_VERSION "")
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(READ "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_h)
  # TensorRT 10.x defines NV_TENSORRT_MAJOR as a number; 10.11+ and 11 route it through TRT_MAJOR_ENTERPRISE.
  foreach(_part MAJOR MINOR PATCH BUILD)
    set(_value "")
    if(_trt_version_h MATCHES "#define[ \t]+TRT_${_part}_ENTERPRISE[ \t]+([0-9]+)")
      set(_value "${CMAKE_MATCH_1}")
    elseif(_trt_version_h MATCHES "#define[ \t]+NV_TENSORRT_${_part}[ \t]+([0-9]+)")
      set(_value "${CMAKE_MATCH_1}")
    endif()
    set(TensorRT_VERSION_${_part} "${_value}")
  endforeach()
  set(TensorRT_VERSION
      "${TensorRT_VERSION_MAJOR}.${TensorRT_VERSION_MINOR}.${TensorRT_VERSION_PATCH}.${TensorRT_VERSION_BUILD}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR
  VERSION_VAR TensorRT_VERSION)

if(TensorRT_FOUND AND NOT TARGET TensorRT::headers)
  add_library(TensorRT::headers INTERFACE IMPORTED)
  set_target_properties(TensorRT::headers PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR}")
endif()
if(TensorRT_FOUND AND TensorRT_nvinfer_LIBRARY AND NOT TARGET TensorRT::nvinfer)
  add_library(TensorRT::nvinfer UNKNOWN IMPORTED)
  set_target_properties(TensorRT::nvinfer PROPERTIES
    IMPORTED_LOCATION "${TensorRT_nvinfer_LIBRARY}"
    INTERFACE_LINK_LIBRARIES TensorRT::headers)
endif()
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_nvinfer_LIBRARY)
