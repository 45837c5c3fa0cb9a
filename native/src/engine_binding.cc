// N-API binding of the CUDA engine (src/cuda/engine.h): the JS side of
// load / encodeImages / encodeImagesU8 / scoreText / forward / dispose /
// deviceInfo. Compiled only when the addon is built with CUDA
// (IMAGEREWARD_WITH_CUDA=1); native/index.ts types it once.
//
// Threading: every call that touches the GPU runs in a Napi::AsyncWorker on the
// libuv pool, never on the JS thread. Input typed arrays are pinned with a
// reference for the duration of the call (no copy: a 256-image batch is 154 MB
// of pixels) — callers must not mutate them until the promise settles (the
// TypeScript wrapper documents and respects this). Outputs are allocated on the
// JS thread before queueing and filled by the worker.
//
// Errors: EngineError → a rejected promise with an Error whose `code` is
// ENGINE_NO_DEVICE, ENGINE_CUBLAS_MISSING, ENGINE_OOM, ENGINE_BAD_MODEL,
// ENGINE_BAD_INPUT, ENGINE_CUDA, ENGINE_CUBLAS, ENGINE_DEVICE_LOST or
// ENGINE_DISPOSED (engine_error_code_name). Nothing here exits or aborts.
#include "engine_binding.h"

#include <napi.h>

#include <cstring>
#include <functional>
#include <vector>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "cuda/engine.h"

namespace {

using ir::Engine;
using ir::EngineError;

Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Runs `work` on the pool; `done` builds the resolution value on the JS thread.
class EngineWorker final : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  EngineWorker(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env, "imagereward:engine"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  // Keeps an input alive while the worker runs.
  void Hold(Napi::Value v) { holds_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }

  void Execute() override {
    try {
      work_();
    } catch (const EngineError& e) {
      code_ = ir::engine_error_code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ENGINE_OOM";
      SetError("host allocation failed");
    } catch (const std::exception& e) {
      code_ = "ENGINE_CUDA";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(CodedError(Env(), code_.empty() ? "ENGINE_CUDA" : code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::string code_;
  std::vector<Napi::ObjectReference> holds_;
};

int BatchArg(const Napi::CallbackInfo& info, size_t i, int max_batch) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "batch must be a number");
  double b = info[i].As<Napi::Number>().DoubleValue();
  if (!(b >= 1) || b != static_cast<double>(static_cast<int>(b)) || b > max_batch) {
    throw Napi::RangeError::New(info.Env(), "batch must be an integer in 1.." + std::to_string(max_batch));
  }
  return static_cast<int>(b);
}

void CheckLength(Napi::Env env, size_t got, size_t want, const char* what) {
  if (got != want) throw Napi::RangeError::New(env, std::string(what) + " has " + std::to_string(got) + " elements, expected " + std::to_string(want));
}

class NativeEngine final : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Class(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod<&NativeEngine::EncodeImagesAsync>("encodeImages"),
                           InstanceMethod<&NativeEngine::EncodeImagesU8Async>("encodeImagesU8"),
                           InstanceMethod<&NativeEngine::ScoreTextAsync>("scoreText"),
                           InstanceMethod<&NativeEngine::ForwardAsync>("forward"),
                           InstanceMethod<&NativeEngine::Dispose>("dispose"),
                           InstanceMethod<&NativeEngine::DeviceInfo>("deviceInfo"),
                           InstanceAccessor<&NativeEngine::Lost>("lost"),
                           InstanceAccessor<&NativeEngine::Config>("config"),
                       });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {}

  void Adopt(std::shared_ptr<Engine> e, int max_batch) {
    engine_ = std::move(e);
    max_batch_ = max_batch;
  }

 private:
  // The promise-returning methods never throw: a disposed or lost engine and bad arguments
  // (TypeError / RangeError, given code ENGINE_BAD_INPUT) become rejections, like the
  // engine's own errors — one way for callers to handle every failure.
  Napi::Value Async(const Napi::CallbackInfo& info, Napi::Value (NativeEngine::*body)(const Napi::CallbackInfo&)) {
    try {
      return (this->*body)(info);
    } catch (const Napi::Error& e) {
      Napi::Object err = e.Value();
      if (!err.Has("code")) err.Set("code", Napi::String::New(info.Env(), "ENGINE_BAD_INPUT"));
      auto d = Napi::Promise::Deferred::New(info.Env());
      d.Reject(err);
      return d.Promise();
    }
  }

  std::shared_ptr<Engine> Live(Napi::Env env) {
    if (!engine_) throw CodedError(env, "ENGINE_DISPOSED", "the engine was disposed");
    if (engine_->lost()) throw CodedError(env, "ENGINE_DEVICE_LOST", "the engine hit a sticky device error and is unusable; create a new one");
    return engine_;
  }
  size_t ImageFloats() const {
    const auto& c = engine_->config();
    return 3ull * c.v_image * c.v_image;
  }
  size_t EmbedFloats() const {
    const auto& c = engine_->config();
    const size_t tokens = static_cast<size_t>(c.v_image / c.v_patch) * (c.v_image / c.v_patch) + 1;
    return tokens * c.v_width;
  }

  // encodeImages(pixels: Float32Array [B,3,S,S], batch) → Promise<Float32Array [B,197,width]>
  Napi::Value EncodeImagesAsync(const Napi::CallbackInfo& info) { return Async(info, &NativeEngine::EncodeImages); }
  Napi::Value EncodeImages(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, "pixels must be a Float32Array");
    }
    auto px = info[0].As<Napi::Float32Array>();
    const int B = BatchArg(info, 1, max_batch_);
    CheckLength(env, px.ElementLength(), B * ImageFloats(), "pixels");
    auto out = Napi::Float32Array::New(env, B * EmbedFloats());
    const float* in = px.Data();
    float* o = out.Data();
    auto shared = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(out)));
    auto* w = new EngineWorker(env, [e, in, B, o] { e->encode_images(in, B, o); },
                               [shared](Napi::Env) { return shared->Value(); });
    w->Hold(px);
    w->Queue();
    return w->Promise();
  }

  // encodeImagesU8(hwc: Uint8Array [B,S,S,3], batch) → Promise<Float32Array [B,197,width]>
  Napi::Value EncodeImagesU8Async(const Napi::CallbackInfo& info) { return Async(info, &NativeEngine::EncodeImagesU8); }
  Napi::Value EncodeImagesU8(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "images must be a Uint8Array");
    }
    auto px = info[0].As<Napi::Uint8Array>();
    const int B = BatchArg(info, 1, max_batch_);
    CheckLength(env, px.ElementLength(), B * ImageFloats(), "images");
    auto out = Napi::Float32Array::New(env, B * EmbedFloats());
    const uint8_t* in = px.Data();
    float* o = out.Data();
    auto shared = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(out)));
    auto* w = new EngineWorker(env, [e, in, B, o] { e->encode_images_u8(in, B, o); },
                               [shared](Napi::Env) { return shared->Value(); });
    w->Hold(px);
    w->Queue();
    return w->Promise();
  }

  struct Ints {
    Napi::Int32Array ids, mask;
  };
  Ints TextArgs(const Napi::CallbackInfo& info, size_t at, int B) {
    Napi::Env env = info.Env();
    for (size_t i = at; i < at + 2; i++) {
      if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        throw Napi::TypeError::New(env, i == at ? "ids must be an Int32Array" : "mask must be an Int32Array");
      }
    }
    Ints t{info[at].As<Napi::Int32Array>(), info[at + 1].As<Napi::Int32Array>()};
    const size_t L = static_cast<size_t>(engine_->config().t_len);
    CheckLength(env, t.ids.ElementLength(), B * L, "ids");
    CheckLength(env, t.mask.ElementLength(), B * L, "mask");
    const int vocab = engine_->config().t_vocab;
    for (size_t i = 0; i < B * L; i++) {
      const int32_t id = t.ids[i];
      if (id < 0 || id >= vocab) throw Napi::RangeError::New(env, "ids[" + std::to_string(i) + "] = " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
      const int32_t m = t.mask[i];
      if (m != 0 && m != 1) throw Napi::RangeError::New(env, "mask values must be 0 or 1");
    }
    return t;
  }

  Napi::Value Scores(Napi::Env env, const std::shared_ptr<Napi::ObjectReference>& reward, const std::shared_ptr<Napi::ObjectReference>& raw) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("reward", reward->Value());
    o.Set("raw", raw->Value());
    return o;
  }

  // scoreText(ids, mask: Int32Array [B,35], embeds: Float32Array [B,197,width], batch) → Promise<{reward, raw}>
  Napi::Value ScoreTextAsync(const Napi::CallbackInfo& info) { return Async(info, &NativeEngine::ScoreText); }
  Napi::Value ScoreText(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    const int B = BatchArg(info, 3, max_batch_);
    Ints t = TextArgs(info, 0, B);
    if (info.Length() < 3 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, "embeds must be a Float32Array");
    }
    auto emb = info[2].As<Napi::Float32Array>();
    CheckLength(env, emb.ElementLength(), B * EmbedFloats(), "embeds");
    auto reward = Napi::Float32Array::New(env, B);
    auto raw = Napi::Float32Array::New(env, B);
    const int32_t* ids = t.ids.Data();
    const int32_t* mask = t.mask.Data();
    const float* em = emb.Data();
    float* r = reward.Data();
    float* rr = raw.Data();
    auto rs = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(reward)));
    auto rws = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(raw)));
    auto* w = new EngineWorker(env, [e, ids, mask, em, B, r, rr] { e->score_text(ids, mask, em, B, r, rr); },
                               [this, rs, rws](Napi::Env env) { return Scores(env, rs, rws); });
    w->Hold(t.ids);
    w->Hold(t.mask);
    w->Hold(emb);
    w->Hold(Value());
    w->Queue();
    return w->Promise();
  }

  // forward(pixels: Float32Array [B,3,S,S], ids, mask: Int32Array [B,35], batch) → Promise<{reward, raw}>
  Napi::Value ForwardAsync(const Napi::CallbackInfo& info) { return Async(info, &NativeEngine::Forward); }
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    const int B = BatchArg(info, 3, max_batch_);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, "pixels must be a Float32Array");
    }
    auto px = info[0].As<Napi::Float32Array>();
    CheckLength(env, px.ElementLength(), B * ImageFloats(), "pixels");
    Ints t = TextArgs(info, 1, B);
    auto reward = Napi::Float32Array::New(env, B);
    auto raw = Napi::Float32Array::New(env, B);
    const float* p = px.Data();
    const int32_t* ids = t.ids.Data();
    const int32_t* mask = t.mask.Data();
    float* r = reward.Data();
    float* rr = raw.Data();
    auto rs = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(reward)));
    auto rws = std::make_shared<Napi::ObjectReference>(Napi::Persistent(static_cast<Napi::Object>(raw)));
    auto* w = new EngineWorker(env, [e, p, ids, mask, B, r, rr] { e->forward(p, ids, mask, B, r, rr); },
                               [this, rs, rws](Napi::Env env) { return Scores(env, rs, rws); });
    w->Hold(px);
    w->Hold(t.ids);
    w->Hold(t.mask);
    w->Hold(Value());
    w->Queue();
    return w->Promise();
  }

  // dispose() → Promise<void>: waits for in-flight batches (the engine's locks), frees device memory.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<Engine> e = std::move(engine_);
    engine_.reset();
    if (!e) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    auto* w = new EngineWorker(env, [e] { e->dispose(); }, [](Napi::Env env) { return env.Undefined(); });
    w->Queue();
    return w->Promise();
  }

  Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    ir::DeviceInfo d;
    try {
      d = e->device_info();
    } catch (const EngineError& err) {
      throw CodedError(env, ir::engine_error_code_name(err.code()), err.what());
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", d.device);
    o.Set("name", d.name);
    o.Set("computeCapability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor));
    o.Set("totalMemory", static_cast<double>(d.total_memory));
    o.Set("freeMemory", static_cast<double>(d.free_memory));
    o.Set("weightBytes", static_cast<double>(d.weight_bytes));
    o.Set("driverVersion", d.driver_version);
    o.Set("runtimeVersion", d.runtime_version);
    o.Set("cublasLtVersion", d.cublaslt_version);
    return o;
  }

  Napi::Value Lost(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), engine_ ? engine_->lost() : false); }

  Napi::Value Config(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto e = Live(env);
    const auto& c = e->config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("imageSize", c.v_image);
    o.Set("imageTokens", (c.v_image / c.v_patch) * (c.v_image / c.v_patch) + 1);
    o.Set("visionWidth", c.v_width);
    o.Set("textLength", c.t_len);
    o.Set("vocab", c.t_vocab);
    o.Set("maxBatch", max_batch_);
    return o;
  }

  std::shared_ptr<Engine> engine_;
  int max_batch_ = 0;
};

Napi::FunctionReference* g_class = nullptr;

int IntOpt(Napi::Object o, const char* key, int fallback, int lo, int hi) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int>(d))) {
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return static_cast<int>(d);
}

bool BoolOpt(Napi::Object o, const char* key, bool fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  if (!o.Get(key).IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return o.Get(key).As<Napi::Boolean>().Value();
}

// engine.load({modelDir, device?, dtype?: 'bf16'|'fp16', maxBatch?, cudaGraphs?, streams?}) → Promise<NativeEngine>
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "load expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  if (!o.Get("modelDir").IsString()) throw Napi::TypeError::New(env, "modelDir must be a string");
  ir::EngineOptions opts;
  opts.model_dir = o.Get("modelDir").As<Napi::String>().Utf8Value();
  opts.device = IntOpt(o, "device", 0, 0, 1024);
  opts.max_batch = IntOpt(o, "maxBatch", 256, 1, 4096);
  opts.streams = IntOpt(o, "streams", 2, 1, 16);
  opts.cuda_graphs = BoolOpt(o, "cudaGraphs", true);
  if (o.Has("dtype") && !o.Get("dtype").IsUndefined()) {
    std::string dt = o.Get("dtype").IsString() ? o.Get("dtype").As<Napi::String>().Utf8Value() : "";
    if (dt != "bf16" && dt != "fp16") throw Napi::TypeError::New(env, "dtype must be 'bf16' or 'fp16'");
    opts.fp16 = dt == "fp16";
  }
  auto holder = std::make_shared<std::shared_ptr<Engine>>();
  const int max_batch = opts.max_batch;
  auto* w = new EngineWorker(
      env, [holder, opts] { *holder = std::shared_ptr<Engine>(Engine::load(opts)); },
      [holder, max_batch](Napi::Env env) {
        Napi::Object obj = g_class->New({});
        NativeEngine::Unwrap(obj)->Adopt(std::move(*holder), max_batch);
        return static_cast<Napi::Value>(obj);
      });
  w->Queue();
  return w->Promise();
}

Napi::Value CudaBuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ir::BuildInfoCuda b = ir::cuda_build_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("archs", b.archs);
  o.Set("cudaRuntimeVersion", b.cuda_runtime_version);
  o.Set("cublasLt", b.cublaslt);
  return o;
}

}  // namespace

namespace imagereward {

void InitEngine(Napi::Env env, Napi::Object exports) {
  g_class = new Napi::FunctionReference(Napi::Persistent(NativeEngine::Class(env)));
  env.SetInstanceData<Napi::FunctionReference>(g_class);
  Napi::Object engine = Napi::Object::New(env);
  engine.Set("load", Napi::Function::New(env, Load, "load"));
  engine.Set("buildInfo", Napi::Function::New(env, CudaBuildInfo, "buildInfo"));
  exports.Set("engine", engine);
}

}  // namespace imagereward
