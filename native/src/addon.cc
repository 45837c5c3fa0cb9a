// addon.cc — Node-API bindings (node-addon-api) of the native ops.
//
// Exports (typed in native/index.ts):
//   preprocess.resizeSync(src, w, h, channels, outW, outH, filter) → Uint8Array
//   preprocess.resize(...same)                                     → Promise<Uint8Array>
//   preprocess.cropNormalize(rgb, w, h, left, top, size, mean, std) → Float32Array (CHW)
//   decode(bytes, format, {maxPixels, alpha?})                     → Promise<{data, width, height, channels}>
//   buildInfo()                                                    → {version, cuda, compiler, decoders}
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
//
// Async decode: same input rule (copied on the JS thread). The decoder (decode_*.cc,
// compiled in only when CMake found its system library; buildInfo().decoders lists
// them) runs on the pool and mallocs the pixels once it knows the size; OnOK hands
// that buffer to JS as an external ArrayBuffer freed by its finalizer (or frees it if
// the promise is rejected). Failures reject with an Error whose `code` is
// ERR_DECODE_CORRUPT, ERR_DECODE_TOO_LARGE or ERR_DECODE_UNSUPPORTED (the caller may
// fall back to another decoder); bad arguments reject with TypeError/RangeError.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "decode_common.h"
#include "normalize.h"
#include "resample.h"
#if IMAGEREWARD_WITH_JPEG
#include "decode_jpeg.h"
#endif
#if IMAGEREWARD_WITH_PNG
#include "decode_png.h"
#endif
#if IMAGEREWARD_WITH_WEBP
#include "decode_webp.h"
#endif

#ifndef IMAGEREWARD_VERSION
#define IMAGEREWARD_VERSION "0.0.0"
#endif
#ifndef IMAGEREWARD_COMPILER
#define IMAGEREWARD_COMPILER "unknown"
#endif
#ifndef IMAGEREWARD_WITH_CUDA
#define IMAGEREWARD_WITH_CUDA 0
#endif
#if IMAGEREWARD_WITH_CUDA
#include "engine_binding.h"
#endif
#ifndef IMAGEREWARD_WITH_JPEG
#define IMAGEREWARD_WITH_JPEG 0
#endif
#ifndef IMAGEREWARD_WITH_PNG
#define IMAGEREWARD_WITH_PNG 0
#endif
#ifndef IMAGEREWARD_WITH_WEBP
#define IMAGEREWARD_WITH_WEBP 0
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

// ---- decode ------------------------------------------------------------------------

enum class DecodeFormat { Jpeg, Png, Webp };

bool decoder_built(DecodeFormat f) {
  switch (f) {
    case DecodeFormat::Jpeg: return IMAGEREWARD_WITH_JPEG != 0;
    case DecodeFormat::Png: return IMAGEREWARD_WITH_PNG != 0;
    case DecodeFormat::Webp: return IMAGEREWARD_WITH_WEBP != 0;
  }
  return false;
}

imagereward::DecodeResult run_decoder(DecodeFormat f, const uint8_t* data, size_t size, uint64_t max_pixels, bool alpha) {
  imagereward::DecodeResult r;
  switch (f) {
    case DecodeFormat::Jpeg:
#if IMAGEREWARD_WITH_JPEG
      return imagereward::decode_jpeg(data, size, max_pixels);
#else
      break;
#endif
    case DecodeFormat::Png:
#if IMAGEREWARD_WITH_PNG
      return imagereward::decode_png(data, size, max_pixels);
#else
      break;
#endif
    case DecodeFormat::Webp:
#if IMAGEREWARD_WITH_WEBP
      return imagereward::decode_webp(data, size, max_pixels, alpha);
#else
      break;
#endif
  }
  (void)data; (void)size; (void)max_pixels; (void)alpha;
  r.status = imagereward::DecodeStatus::Unsupported;
  r.message = "decoder not compiled in";
  return r;
}

class DecodeWorker final : public Napi::AsyncWorker {
 public:
  DecodeWorker(Napi::Env env, Napi::Promise::Deferred deferred, DecodeFormat format, const Napi::Uint8Array& bytes,
               uint64_t max_pixels, bool alpha)
      : Napi::AsyncWorker(env, "imagereward:decode"),
        deferred_(deferred),
        format_(format),
        input_(bytes.Data(), bytes.Data() + bytes.ByteLength()),
        max_pixels_(max_pixels),
        alpha_(alpha) {}

  ~DecodeWorker() override { std::free(result_.pixels.data); }

  void Execute() override {  // libuv pool thread: no Napi calls here
    result_ = run_decoder(format_, input_.data(), input_.size(), max_pixels_, alpha_);
    std::vector<uint8_t>().swap(input_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    using imagereward::DecodeStatus;
    if (result_.status != DecodeStatus::Ok) {
      const char* code = result_.status == DecodeStatus::TooLarge      ? "ERR_DECODE_TOO_LARGE"
                         : result_.status == DecodeStatus::Unsupported ? "ERR_DECODE_UNSUPPORTED"
                                                                       : "ERR_DECODE_CORRUPT";
      Napi::Error e = Napi::Error::New(env, "decode: " + result_.message);
      e.Set("code", Napi::String::New(env, code));
      deferred_.Reject(e.Value());
      return;
    }
    imagereward::DecodedPixels px = result_.pixels;
    result_.pixels.data = nullptr;  // owned by the ArrayBuffer from here on
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, px.data, px.bytes, [](Napi::Env, void* p) { std::free(p); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("data", Napi::Uint8Array::New(env, px.bytes, ab, 0));
    o.Set("width", Napi::Number::New(env, px.width));
    o.Set("height", Napi::Number::New(env, px.height));
    o.Set("channels", Napi::Number::New(env, px.channels));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  DecodeFormat format_;
  std::vector<uint8_t> input_;
  uint64_t max_pixels_;
  bool alpha_;
  imagereward::DecodeResult result_;
};

Napi::Value Decode(const Napi::CallbackInfo& info) {
  const char* fn = "decode";
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  try {
    const Napi::Uint8Array bytes = u8_arg(info, 0, fn, "bytes");
    const Napi::Value fv = info[1];
    if (!fv.IsString()) type_error(env, fn, "format must be 'jpeg', 'png' or 'webp', got " + describe(fv));
    const std::string fs = fv.As<Napi::String>().Utf8Value();
    DecodeFormat format;
    if (fs == "jpeg") format = DecodeFormat::Jpeg;
    else if (fs == "png") format = DecodeFormat::Png;
    else if (fs == "webp") format = DecodeFormat::Webp;
    else type_error(env, fn, "format must be 'jpeg', 'png' or 'webp', got '" + fs + "'");
    const Napi::Value ov = info[2];
    if (!ov.IsObject()) type_error(env, fn, "options must be an object, got " + describe(ov));
    const Napi::Object opts = ov.As<Napi::Object>();
    const Napi::Value mp = opts.Get("maxPixels");
    if (!mp.IsNumber()) type_error(env, fn, "options.maxPixels must be a number, got " + describe(mp));
    const double maxp = mp.As<Napi::Number>().DoubleValue();
    if (!(maxp >= 1) || !std::isfinite(maxp) || std::floor(maxp) != maxp || maxp > 9007199254740991.0) {
      range_error(env, fn, "options.maxPixels must be a positive integer, got " + describe(mp));
    }
    const Napi::Value av = opts.Get("alpha");
    if (!av.IsUndefined() && !av.IsBoolean()) type_error(env, fn, "options.alpha must be a boolean, got " + describe(av));
    const bool alpha = av.IsBoolean() && av.As<Napi::Boolean>().Value();
    if (!decoder_built(format)) {
      Napi::Error e = Napi::Error::New(env, "decode: the " + fs + " decoder was not compiled in");
      e.Set("code", Napi::String::New(env, "ERR_DECODE_UNSUPPORTED"));
      throw e;
    }
    auto* worker = new DecodeWorker(env, deferred, format, bytes, static_cast<uint64_t>(maxp), alpha);
    worker->Queue();
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred.Reject(Napi::Error::New(env, std::string("decode: ") + e.what()).Value());
  }
  return deferred.Promise();
}

// ---- buildInfo -------------------------------------------------------------------

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", IMAGEREWARD_VERSION);
  o.Set("cuda", Napi::Boolean::New(env, IMAGEREWARD_WITH_CUDA != 0));
  o.Set("compiler", IMAGEREWARD_COMPILER);
  Napi::Array decoders = Napi::Array::New(env);
  uint32_t n = 0;
  if (IMAGEREWARD_WITH_JPEG) decoders.Set(n++, "jpeg");
  if (IMAGEREWARD_WITH_PNG) decoders.Set(n++, "png");
  if (IMAGEREWARD_WITH_WEBP) decoders.Set(n++, "webp");
  o.Set("decoders", decoders);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Object preprocess = Napi::Object::New(env);
  preprocess.Set("resize", Napi::Function::New(env, Resize, "resize"));
  preprocess.Set("resizeSync", Napi::Function::New(env, ResizeSync, "resizeSync"));
  preprocess.Set("cropNormalize", Napi::Function::New(env, CropNormalize, "cropNormalize"));
  exports.Set("preprocess", preprocess);
  exports.Set("decode", Napi::Function::New(env, Decode, "decode"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
#if IMAGEREWARD_WITH_CUDA
  imagereward::InitEngine(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(imagereward_native, Init)
