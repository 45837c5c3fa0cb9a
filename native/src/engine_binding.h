// Registers the CUDA engine's JS surface (`exports.engine`) on the addon; see
// engine_binding.cc. Only compiled when the addon is built with CUDA.
#pragma once

#include <napi.h>

namespace imagereward {
void InitEngine(Napi::Env env, Napi::Object exports);
}
