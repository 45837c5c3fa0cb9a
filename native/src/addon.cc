// addon.cc — Node-API bindings (node-addon-api) of the native ops.
//
// Exports (typed in native/index.ts):
//   preprocess.resizeSync(src, w, h, channels, outW, outH, filter) → Uint8Array
//   preprocess.resize(...same)                                     → Promise<Uint8Array>
//   preprocess.cropNormalize(rgb, w, h, left, top, size, mean, std) → Float32Array (CHW)
//   buildInfo()                                                    → {version, cuda, compiler}
//
// Errors: built with C++ exceptions (NODE_ADDON_API_CPP_EXCEPTIONS[_ALL]).
// Argument checks throw Napi::TypeError (wrong type, unknown filter name) or
// Napi::RangeError (bad size, length mismatch, crop outside the image); any
// std::exception (std::bad_alloc) becomes a JS Error. Nothing here aborts the
// process. `resize` never throws synchronously: a bad argument rejects the
// promise.
//
// Async resize: the input is copied into the worker on the JS thread (a caller
// could otherwise transfer/detach or mutate its ArrayBuffer while the pool
// thread reads it); the output Uint8Array is allocated on the JS thread, kept
// alive by a reference, filled on the libuv pool (AsyncWorker::Execute) and only
// handed to JS when the work is done.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "normalize.h"
#include "resample.h"

#ifndef IMAGEREWARD_VERSION
#define IMAGEREWARD_VERSION "0.0.0"
#endif
#ifndef IMAGEREWARD_COMPILER
#define IMAGEREWARD_COMPILER "unknown"
#endif
#ifndef IMAGEREWARD_WITH_CUDA
#define IMAGEREWARD_WITH_CUDA 0
#endif

namespace {

using imagereward::ResampleFilter;

// Pillow passes sizes through float boxes: keep every side exactly representable.
constexpr int64_t kMaxSide = int64_t{1} << 24;
// Largest buffer we create or accept (fits every Node typed array limit).
constexpr uint64_t kMaxBytes = (uint64_t{1} << 31) - 1;

// ---- argument parsing -----------------------------------------------------------

std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: {
      const double d = v.As<Napi::Number>().DoubleValue();
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    default:
      if (v.IsTypedArray()) return "a typed array of another element type";
      if (v.IsArray()) return "an array";
      return "an object";
  }
}

[[noreturn]] void type_error(Napi::Env env, const char* fn, const std::string& msg) {
  throw Napi::TypeError::New(env, std::string(fn) + ": " + msg);
}
[[noreturn]] void range_error(Napi::Env env, const char* fn, const std::string& msg) {
  throw Napi::RangeError::New(env, std::string(fn) + ": " + msg);
}

Napi::Uint8Array u8_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    type_error(info.Env(), fn, std::string(name) + " must be a Uint8Array (or Buffer), got " + describe(v));
  }
  return v.As<Napi::Uint8Array>();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t lo, int64_t hi) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) type_error(info.Env(), fn, std::string(name) + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    range_error(info.Env(), fn, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "], got " + describe(v));
  }
  return static_cast<int64_t>(d);
}

ResampleFilter filter_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  const Napi::Value v = info[i];
  if (v.IsString()) {
    const std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "bicubic") return ResampleFilter::Bicubic;
    if (s == "nearest") return ResampleFilter::Nearest;
    type_error(info.Env(), fn, "filter must be 'nearest' or 'bicubic', got '" + s + "'");
  }
  type_error(info.Env(), fn, "filter must be 'nearest' or 'bicubic', got " + describe(v));
}

void triple_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, float out[3]) {
  const Napi::Value v = info[i];
  const bool ok = (v.IsArray() && v.As<Napi::Array>().Length() == 3) ||
                  (v.IsTypedArray() && v.As<Napi::TypedArray>().ElementLength() == 3);
  if (!ok) type_error(info.Env(), fn, std::string(name) + " must be an array of 3 numbers, got " + describe(v));
  const Napi::Object o = v.As<Napi::Object>();
  for (uint32_t c = 0; c < 3; ++c) {
    const Napi::Value e = o.Get(c);
    if (!e.IsNumber()) {
      type_error(info.Env(), fn, std::string(name) + "[" + std::to_string(c) + "] must be a number, got " + describe(e));
    }
    const double d = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d)) {
      range_error(info.Env(), fn, std::string(name) + "[" + std::to_string(c) + "] must be finite, got " + describe(e));
    }
    out[c] = static_cast<float>(d);  // torch.as_tensor(..., dtype=float32): round to nearest
  }
}

struct ResizeArgs {
  Napi::Uint8Array src;
  int width = 0, height = 0, channels = 0, out_width = 0, out_height = 0;
  ResampleFilter filter = ResampleFilter::Bicubic;
  size_t in_bytes = 0, out_bytes = 0;
};

ResizeArgs parse_resize(const Napi::CallbackInfo& info, const char* fn) {
  ResizeArgs a;
  a.src = u8_arg(info, 0, fn, "src");
  a.width = static_cast<int>(int_arg(info, 1, fn, "width", 1, kMaxSide));
  a.height = static_cast<int>(int_arg(info, 2, fn, "height", 1, kMaxSide));
  a.channels = static_cast<int>(int_arg(info, 3, fn, "channels", 1, 4));
  a.out_width = static_cast<int>(int_arg(info, 4, fn, "outWidth", 1, kMaxSide));
  a.out_height = static_cast<int>(int_arg(info, 5, fn, "outHeight", 1, kMaxSide));
  a.filter = filter_arg(info, 6, fn);
  const uint64_t in_bytes = static_cast<uint64_t>(a.width) * static_cast<uint64_t>(a.height) * static_cast<uint64_t>(a.channels);
  const uint64_t out_bytes = static_cast<uint64_t>(a.out_width) * static_cast<uint64_t>(a.out_height) * static_cast<uint64_t>(a.channels);
  if (a.src.ByteLength() != in_bytes) {
    range_error(info.Env(), fn, "src has " + std::to_string(a.src.ByteLength()) + " bytes, expected width*height*channels = " +
                                    std::to_string(a.width) + "*" + std::to_string(a.height) + "*" + std::to_string(a.channels) +
                                    " = " + std::to_string(in_bytes));
  }
  if (out_bytes > kMaxBytes) {
    range_error(info.Env(), fn, "output of " + std::to_string(out_bytes) + " bytes exceeds the " + std::to_string(kMaxBytes) + "-byte limit");
  }
  a.in_bytes = static_cast<size_t>(in_bytes);
  a.out_bytes = static_cast<size_t>(out_bytes);
  return a;
}

// ---- preprocess.resizeSync / preprocess.resize --------------------------------

Napi::Value ResizeSync(const Napi::CallbackInfo& info) {
  const ResizeArgs a = parse_resize(info, "resizeSync");
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), a.out_bytes);
  imagereward::resize_u8(a.src.Data(), a.width, a.height, a.channels, out.Data(), a.out_width, a.out_height, a.filter);
  return out;
}

class ResizeWorker final : public Napi::AsyncWorker {
 public:
  ResizeWorker(Napi::Env env, Napi::Promise::Deferred deferred, const ResizeArgs& a)
      : Napi::AsyncWorker(env, "imagereward:resize"),
        deferred_(deferred),
        src_(a.src.Data(), a.src.Data() + a.in_bytes),
        width_(a.width), height_(a.height), channels_(a.channels),
        out_width_(a.out_width), out_height_(a.out_height), filter_(a.filter) {
    Napi::Uint8Array out = Napi::Uint8Array::New(env, a.out_bytes);
    out_data_ = out.Data();
    out_ = Napi::Persistent(out);
  }

  void Execute() override {  // libuv pool thread: no Napi calls here
    imagereward::resize_u8(src_.data(), width_, height_, channels_, out_data_, out_width_, out_height_, filter_);
    std::vector<uint8_t>().swap(src_);  // release the copy early
  }
  void OnOK() override { deferred_.Resolve(out_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> src_;
  int width_, height_, channels_, out_width_, out_height_;
  ResampleFilter filter_;
  Napi::Reference<Napi::Uint8Array> out_;
  uint8_t* out_data_ = nullptr;
};

Napi::Value Resize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  try {
    const ResizeArgs a = parse_resize(info, "resize");
    auto* worker = new ResizeWorker(env, deferred, a);  // deletes itself after OnOK/OnError
    worker->Queue();
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  } catch (const std::exception& e) {  // std::bad_alloc copying the input or allocating the output
    deferred.Reject(Napi::Error::New(env, std::string("resize: ") + e.what()).Value());
  }
  return deferred.Promise();
}

// ---- preprocess.cropNormalize ----------------------------------------------------

Napi::Value CropNormalize(const Napi::CallbackInfo& info) {
  const char* fn = "cropNormalize";
  Napi::Env env = info.Env();
  const Napi::Uint8Array rgb = u8_arg(info, 0, fn, "rgb");
  const int64_t width = int_arg(info, 1, fn, "width", 1, kMaxSide);
  const int64_t height = int_arg(info, 2, fn, "height", 1, kMaxSide);
  const int64_t left = int_arg(info, 3, fn, "left", 0, kMaxSide);
  const int64_t top = int_arg(info, 4, fn, "top", 0, kMaxSide);
  const int64_t size = int_arg(info, 5, fn, "size", 1, kMaxSide);
  float mean[3], std[3];
  triple_arg(info, 6, fn, "mean", mean);
  triple_arg(info, 7, fn, "std", std);
  for (int c = 0; c < 3; ++c) {
    if (std[c] == 0.0f) range_error(env, fn, "std[" + std::to_string(c) + "] must not be 0");
  }
  const uint64_t in_bytes = static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 3;
  if (rgb.ByteLength() != in_bytes) {
    range_error(env, fn, "rgb has " + std::to_string(rgb.ByteLength()) + " bytes, expected width*height*3 = " +
                             std::to_string(width) + "*" + std::to_string(height) + "*3 = " + std::to_string(in_bytes));
  }
  if (left + size > width || top + size > height) {
    range_error(env, fn, "crop " + std::to_string(size) + "x" + std::to_string(size) + " at (" + std::to_string(left) + ", " +
                             std::to_string(top) + ") does not fit in the " + std::to_string(width) + "x" + std::to_string(height) + " image");
  }
  const uint64_t out_floats = 3 * static_cast<uint64_t>(size) * static_cast<uint64_t>(size);
  if (out_floats * sizeof(float) > kMaxBytes) range_error(env, fn, "crop size too large");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(out_floats));
  imagereward::crop_normalize_rgb_chw(rgb.Data(), static_cast<int>(width), static_cast<int>(height), static_cast<int>(left),
                                      static_cast<int>(top), static_cast<int>(size), mean, std, out.Data());
  return out;
}

// ---- buildInfo -------------------------------------------------------------------

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", IMAGEREWARD_VERSION);
  o.Set("cuda", Napi::Boolean::New(env, IMAGEREWARD_WITH_CUDA != 0));
  o.Set("compiler", IMAGEREWARD_COMPILER);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Object preprocess = Napi::Object::New(env);
  preprocess.Set("resize", Napi::Function::New(env, Resize, "resize"));
  preprocess.Set("resizeSync", Napi::Function::New(env, ResizeSync, "resizeSync"));
  preprocess.Set("cropNormalize", Napi::Function::New(env, CropNormalize, "cropNormalize"));
  exports.Set("preprocess", preprocess);
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  return exports;
}

}  // namespace

NODE_API_MODULE(imagereward_native, Init)
