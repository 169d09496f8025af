// Status reporting shared by every entry point of the library: the calling thread's last error message.
#pragma once

#include "gsmlp/common.h"

namespace gsmlp {

// Records `message` as the calling thread's last error and returns `status`, so that callers can
// write `return fail(GSMLP_INVALID_ARGUMENT, "...")`.
int fail(int status, const char* message);
int fail_fmt(int status, const char* format, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

}  // namespace gsmlp
