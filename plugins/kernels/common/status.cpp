#include "status.h"

#include <cstdarg>
#include <cstdio>

namespace gsmlp {
namespace {
thread_local char last_error[512] = "";
}

int fail(int status, const char* message) {
  std::snprintf(last_error, sizeof last_error, "%s", message);
  return status;
}

int fail_fmt(int status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(last_error, sizeof last_error, format, args);
  va_end(args);
  return status;
}

void clear_error() { last_error[0] = '\0'; }

}  // namespace gsmlp

extern "C" {

int gsmlp_abi_version(void) { return GSMLP_ABI_VERSION; }

const char* gsmlp_last_error(void) { return gsmlp::last_error; }

const char* gsmlp_status_string(int status) {
  switch (status) {
    case GSMLP_OK: return "ok";
    case GSMLP_INVALID_ARGUMENT: return "invalid argument";
    case GSMLP_WORKSPACE_TOO_SMALL: return "workspace too small";
    case GSMLP_NOT_SUPPORTED: return "not supported";
    case GSMLP_CUDA_ERROR: return "CUDA error";
    case GSMLP_NOT_BUILT: return "not built into this library";
    default: return "unknown status";
  }
}

}  // extern "C"
