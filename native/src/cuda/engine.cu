// engine.cu — the CUDA engine (engine.h): ViT-L/16 image encoder, the wide cross-K/V
// GEMM, the multimodal BERT and the folded reward head, for one model on one device.
//
// Data flow per batch (T = bf16 or fp16 storage; residual streams fp32):
//   pixels fp32 ─patchify→ T ─GEMM+bias→ fp32 ─assemble(cls, pos)→ x fp32 [B,197,W]
//   24× { LN→T ─qkv GEMM+bias→ T ─attention→ T ─proj GEMM+bias, += x │
//         LN→T ─fc1 GEMM→ fp32 ─bias + exact erf GELU→ T ─fc2 GEMM+bias, += x }
//   final LN → image embeds (fp32 for encode_images, T for the next GEMM)
//   cross K/V of all 12 layers: one GEMM [B*197, W] · [12*2*768, W]ᵀ → T
//   BERT: embed+LN → 12× { qkv GEMM → masked attention → dense+bias += h → LN (post-norm)
//         → cross q GEMM → attention over this layer's K/V slice → dense += h → LN
//         → intermediate GEMM → bias+GELU → output GEMM+bias += h → LN }
//   reward head on the [CLS] row: raw = dot(h, w) + b; reward = (raw − mean) / std.
//
// Batching: every call is padded up to a bucket (1, 2, 4, …, 256); each bucket has its
// own device buffers, allocated on first use, and (opts.cuda_graphs) one CUDA graph per
// entry point, captured right after the bucket's first eager run (so cuBLASLt plans
// exist before capture). Padded rows are zero pixels / zero ids with mask 0; their
// results are computed and dropped.
//
// Concurrency: opts.streams "slots", each with its own stream, GEMM runner (cuBLASLt
// handle, workspace, plans), bucket buffers, graphs and pinned staging, and a mutex. A
// call takes a free slot (or waits for one), so two threads run two batches at once.
//
// Errors: every CUDA call goes through IR_CHECK (gemm.cuh) → EngineError with
// file:line and the CUDA error text; sticky errors set lost() and throw DeviceLost.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "cuda/cublaslt_loader.h"
#include "cuda/engine.h"
#include "cuda/engine_kernels.cuh"
#include "cuda/gemm.cuh"
#include "cuda/ops.cuh"
#include "cuda/weights.h"

#ifndef IMAGEREWARD_CUDA_ARCHS
#define IMAGEREWARD_CUDA_ARCHS "80;90"
#endif

namespace ir {

const char* engine_error_code_name(EngineErrorCode c) {
  switch (c) {
    case EngineErrorCode::NoDevice: return "ENGINE_NO_DEVICE";
    case EngineErrorCode::CublasMissing: return "ENGINE_CUBLAS_MISSING";
    case EngineErrorCode::OutOfMemory: return "ENGINE_OOM";
    case EngineErrorCode::BadModel: return "ENGINE_BAD_MODEL";
    case EngineErrorCode::BadInput: return "ENGINE_BAD_INPUT";
    case EngineErrorCode::Cuda: return "ENGINE_CUDA";
    case EngineErrorCode::Cublas: return "ENGINE_CUBLAS";
    case EngineErrorCode::DeviceLost: return "ENGINE_DEVICE_LOST";
    case EngineErrorCode::Disposed: return "ENGINE_DISPOSED";
  }
  return "ENGINE_UNKNOWN";
}

BuildInfoCuda cuda_build_info() {
  BuildInfoCuda b;
  b.cuda = true;
  b.archs = IMAGEREWARD_CUDA_ARCHS;
  b.cuda_runtime_version = CUDART_VERSION;
  b.cublaslt = std::string("dlopen ") + cublaslt_first_soname();
  return b;
}

namespace {

using cuda::GemmArgs;
using cuda::GemmRunner;

constexpr int kBuckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
constexpr int kMaxBucket = 256;
// Pixel normalization of the upstream preprocessing (BLIP / CLIP mean and std).
constexpr float kPixMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kPixStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
constexpr float kVitEps = 1e-6f, kBertEps = 1e-12f;

enum Mode { kForward = 0, kEncodeF32, kEncodeU8, kScore, kModes };

int bucket_for(int B) {
  for (int b : kBuckets)
    if (b >= B) return b;
  return kMaxBucket;
}

// Device buffers of one bucket (one arena). Sizes in elements; B = the bucket.
struct Buffers {
  int B = 0;
  void* arena = nullptr;
  float* pixels = nullptr;   // [B, 3, S, S]
  uint8_t* u8 = nullptr;     // [B, S, S, 3]
  void* patches = nullptr;   // T [B*Np, 3*P*P]
  float* x = nullptr;        // [B*N, W]
  void* h = nullptr;         // T [B*N, W]
  void* qkv = nullptr;       // T [B*N, 3W]
  void* attn = nullptr;      // T [B*N, W]
  float* scratch = nullptr;  // fp32: patch GEMM out [B*Np, W] / fc1 out [B*N, M] (default path) / text inter [B*L, I]
  void* mlp = nullptr;       // T [B*N, M]
  float* emb32 = nullptr;    // [B*N, W]
  void* embT = nullptr;      // T [B*N, W]
  void* xkv = nullptr;       // T [B*N, layers*2h]
  int32_t* ids = nullptr;    // [B, L]
  int32_t* mask = nullptr;   // [B, L]
  float* t32 = nullptr;      // [B*L, h]
  void* tT = nullptr;        // T [B*L, h]
  void* tqkv = nullptr;      // T [B*L, 3h]
  void* tctx = nullptr;      // T [B*L, h]
  void* tq = nullptr;        // T [B*L, h]
  void* tinter = nullptr;    // T [B*L, I]
  float* raw = nullptr;      // [B]
  float* reward = nullptr;   // [B]
  cudaGraphExec_t graphs[kModes] = {};
  bool graph_failed[kModes] = {};

  void release() {
    for (auto& g : graphs)
      if (g) {
        cudaGraphExecDestroy(g);
        g = nullptr;
      }
    if (arena) cudaFree(arena);
    arena = nullptr;
  }
};

struct Slot {
  std::mutex mu;
  cudaStream_t stream = nullptr;
  std::unique_ptr<GemmRunner> gemm;
  std::map<int, Buffers> bufs;
  void* pin_in = nullptr;
  size_t pin_in_bytes = 0, pin_used = 0;
  void* pin_out = nullptr;
  size_t pin_out_bytes = 0;
};

template <typename T>
class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& opts) : opts_(opts) {}
  ~EngineImpl() override {
    try {
      dispose();
    } catch (...) {
    }
  }

  void init() {
    int n = 0;
    IR_CHECK(cudaGetDeviceCount(&n));
    if (opts_.device < 0 || opts_.device >= n)
      throw EngineError(EngineErrorCode::NoDevice, "CUDA device " + std::to_string(opts_.device) + " does not exist (" + std::to_string(n) + " found)");
    if (opts_.max_batch < 1 || opts_.max_batch > kMaxBucket)
      throw EngineError(EngineErrorCode::BadInput, "max_batch must be 1.." + std::to_string(kMaxBucket));
    IR_CHECK(cudaSetDevice(opts_.device));
    if (const char* v = std::getenv("IMAGEREWARD_FC1_T")) fc1_t_ = std::strcmp(v, "1") == 0;
    cublaslt();  // fail fast: CublasMissing before reading 1.8 GB
    weights_ = load_weights(opts_.model_dir, opts_.fp16, &cfg_);
    const int ns = std::max(1, std::min(opts_.streams, 8));
    for (int i = 0; i < ns; i++) {
      auto s = std::make_unique<Slot>();
      IR_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
      s->gemm = std::make_unique<GemmRunner>(opts_.fp16, s->stream);
      slots_.push_back(std::move(s));
    }
  }

  const ModelConfig& config() const override { return cfg_; }

  DeviceInfo device_info() const override {
    check_live();
    DeviceInfo d;
    d.device = opts_.device;
    IR_CHECK(cudaSetDevice(opts_.device));
    cudaDeviceProp p{};
    IR_CHECK(cudaGetDeviceProperties(&p, opts_.device));
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    IR_CHECK(cudaMemGetInfo(&d.free_memory, &d.total_memory));
    d.weight_bytes = weights_ ? weights_->bytes : 0;
    IR_CHECK(cudaDriverGetVersion(&d.driver_version));
    IR_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
    std::string why;
    if (const CublasLtApi* a = cublaslt_try(&why)) d.cublaslt_version = a->version_string();
    d.graphs_captured = graphs_captured_.load();
    d.graphs_failed = graphs_failed_.load();
    for (const auto& s : slots_)
      if (s->gemm) d.gemm_bias_seeded += static_cast<int>(s->gemm->bias_seeded_count());
    return d;
  }

  void encode_images(const float* pixels, int B, float* embeds_out) override {
    guard([&] {
      check_batch(B);
      if (!pixels || !embeds_out) throw EngineError(EngineErrorCode::BadInput, "null pointer");
      run(B, kEncodeF32, [&](Slot& s, Buffers& b) { stage_pixels(s, b, pixels, B); },
          [&](Slot& s, Buffers& b) { fetch(s, b.emb32, embeds_out, size_t(B) * tokens() * cfg_.v_width); });
    });
  }

  void encode_images_u8(const uint8_t* hwc, int B, float* embeds_out) override {
    guard([&] {
      check_batch(B);
      if (!hwc || !embeds_out) throw EngineError(EngineErrorCode::BadInput, "null pointer");
      run(B, kEncodeU8,
          [&](Slot& s, Buffers& b) {
            const size_t per = size_t(cfg_.v_image) * cfg_.v_image * 3;
            upload(s, b.u8, hwc, per * B, per * b.B);
          },
          [&](Slot& s, Buffers& b) { fetch(s, b.emb32, embeds_out, size_t(B) * tokens() * cfg_.v_width); });
    });
  }

  void score_text(const int32_t* ids, const int32_t* mask, const float* embeds, int B, float* reward, float* raw) override {
    guard([&] {
      check_batch(B);
      if (!embeds || !reward || !raw) throw EngineError(EngineErrorCode::BadInput, "null pointer");
      check_tokens(ids, mask, B);
      run(B, kScore,
          [&](Slot& s, Buffers& b) {
            const size_t per = size_t(tokens()) * cfg_.v_width;
            upload(s, b.emb32, embeds, per * B * 4, per * b.B * 4);
            stage_tokens(s, b, ids, mask, B);
          },
          [&](Slot& s, Buffers& b) { fetch_rewards(s, b, B, reward, raw); });
    });
  }

  void forward(const float* pixels, const int32_t* ids, const int32_t* mask, int B, float* reward, float* raw) override {
    guard([&] {
      check_batch(B);
      if (!pixels || !reward || !raw) throw EngineError(EngineErrorCode::BadInput, "null pointer");
      check_tokens(ids, mask, B);
      run(B, kForward,
          [&](Slot& s, Buffers& b) {
            stage_pixels(s, b, pixels, B);
            stage_tokens(s, b, ids, mask, B);
          },
          [&](Slot& s, Buffers& b) { fetch_rewards(s, b, B, reward, raw); });
    });
  }

  void dispose() override {
    if (disposed_.exchange(true)) return;
    cudaSetDevice(opts_.device);
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> l(s->mu);
      for (auto& [k, b] : s->bufs) b.release();
      s->bufs.clear();
      s->gemm.reset();
      if (s->pin_in) cudaFreeHost(s->pin_in);
      if (s->pin_out) cudaFreeHost(s->pin_out);
      s->pin_in = s->pin_out = nullptr;
      if (s->stream) cudaStreamDestroy(s->stream);
      s->stream = nullptr;
    }
    weights_.reset();
    cudaGetLastError();  // do not leave a (non-sticky) error behind
  }

  bool lost() const override { return lost_.load(); }

 private:
  // ---- plumbing ---------------------------------------------------------------------------
  int tokens() const { return (cfg_.v_image / cfg_.v_patch) * (cfg_.v_image / cfg_.v_patch) + 1; }
  int patches() const { return tokens() - 1; }

  void check_live() const {
    if (disposed_.load()) throw EngineError(EngineErrorCode::Disposed, "engine disposed");
    if (lost_.load()) throw EngineError(EngineErrorCode::DeviceLost, "the CUDA device hit a sticky error earlier; the engine is unusable");
  }

  void check_batch(int B) const {
    if (B < 1 || B > opts_.max_batch)
      throw EngineError(EngineErrorCode::BadInput, "batch " + std::to_string(B) + " outside 1.." + std::to_string(opts_.max_batch));
  }

  void check_tokens(const int32_t* ids, const int32_t* mask, int B) const {
    if (!ids || !mask) throw EngineError(EngineErrorCode::BadInput, "null ids or mask");
    const size_t n = size_t(B) * cfg_.t_len;
    for (size_t i = 0; i < n; i++) {
      if (ids[i] < 0 || ids[i] >= cfg_.t_vocab)
        throw EngineError(EngineErrorCode::BadInput, "token id " + std::to_string(ids[i]) + " at " + std::to_string(i) + " outside the vocab (" + std::to_string(cfg_.t_vocab) + ")");
      if (mask[i] != 0 && mask[i] != 1) throw EngineError(EngineErrorCode::BadInput, "attention mask values must be 0 or 1");
    }
  }

  template <typename F>
  void guard(F&& f) {
    check_live();
    try {
      f();
    } catch (const EngineError& e) {
      if (e.code() == EngineErrorCode::DeviceLost) lost_ = true;
      throw;
    } catch (const std::bad_alloc&) {
      throw EngineError(EngineErrorCode::OutOfMemory, "host memory allocation failed");
    }
  }

  std::unique_lock<std::mutex> acquire(Slot** out) {
    const size_t n = slots_.size();
    const size_t start = next_slot_.fetch_add(1) % n;
    for (size_t i = 0; i < n; i++) {
      Slot* s = slots_[(start + i) % n].get();
      std::unique_lock<std::mutex> l(s->mu, std::try_to_lock);
      if (l.owns_lock()) {
        *out = s;
        return l;
      }
    }
    *out = slots_[start].get();
    return std::unique_lock<std::mutex>((*out)->mu);
  }

  static void ensure_pinned(void** p, size_t* have, size_t need) {
    if (*have >= need) return;
    if (*p) cudaFreeHost(*p);
    *p = nullptr;
    *have = 0;
    IR_CHECK(cudaHostAlloc(p, need, cudaHostAllocPortable));
    *have = need;
  }

  // Host → pinned → device, async on the slot's stream; zero-fills dst up to padded_bytes.
  // Inputs of one call sit side by side in pin_in (pin_used); the call's final fetch
  // synchronizes the stream, so pin_in is free again when the next call starts.
  void upload(Slot& s, void* dst, const void* src, size_t bytes, size_t padded_bytes) {
    const size_t aligned = (bytes + 255) / 256 * 256;
    if (s.pin_used + aligned > s.pin_in_bytes) {
      IR_CHECK(cudaStreamSynchronize(s.stream));  // earlier copies of this call are done
      s.pin_used = 0;
      ensure_pinned(&s.pin_in, &s.pin_in_bytes, std::max(aligned + (size_t(1) << 20), s.pin_in_bytes));
    }
    uint8_t* p = static_cast<uint8_t*>(s.pin_in) + s.pin_used;
    std::memcpy(p, src, bytes);
    IR_CHECK(cudaMemcpyAsync(dst, p, bytes, cudaMemcpyHostToDevice, s.stream));
    if (padded_bytes > bytes) IR_CHECK(cudaMemsetAsync(static_cast<uint8_t*>(dst) + bytes, 0, padded_bytes - bytes, s.stream));
    s.pin_used += aligned;
  }

  void stage_pixels(Slot& s, Buffers& b, const float* pixels, int B) {
    const size_t per = size_t(3) * cfg_.v_image * cfg_.v_image;
    upload(s, b.pixels, pixels, per * B * 4, per * b.B * 4);
  }

  void stage_tokens(Slot& s, Buffers& b, const int32_t* ids, const int32_t* mask, int B) {
    const size_t per = size_t(cfg_.t_len);
    upload(s, b.ids, ids, per * B * 4, per * b.B * 4);
    upload(s, b.mask, mask, per * B * 4, per * b.B * 4);
  }

  void fetch(Slot& s, const float* src, float* dst, size_t n) {
    ensure_pinned(&s.pin_out, &s.pin_out_bytes, n * 4);
    IR_CHECK(cudaMemcpyAsync(s.pin_out, src, n * 4, cudaMemcpyDeviceToHost, s.stream));
    IR_CHECK(cudaStreamSynchronize(s.stream));
    std::memcpy(dst, s.pin_out, n * 4);
  }

  void fetch_rewards(Slot& s, Buffers& b, int B, float* reward, float* raw) {
    ensure_pinned(&s.pin_out, &s.pin_out_bytes, size_t(B) * 8);
    float* p = static_cast<float*>(s.pin_out);
    IR_CHECK(cudaMemcpyAsync(p, b.reward, size_t(B) * 4, cudaMemcpyDeviceToHost, s.stream));
    IR_CHECK(cudaMemcpyAsync(p + B, b.raw, size_t(B) * 4, cudaMemcpyDeviceToHost, s.stream));
    IR_CHECK(cudaStreamSynchronize(s.stream));
    std::memcpy(reward, p, size_t(B) * 4);
    std::memcpy(raw, p + B, size_t(B) * 4);
  }

  // One entry point: stage inputs, run (graph or eager), fetch outputs.
  template <typename In, typename Out>
  void run(int B, Mode mode, In&& stage_in, Out&& fetch_out) {
    Slot* s = nullptr;
    auto lock = acquire(&s);
    check_live();  // disposed while we waited for the slot
    IR_CHECK(cudaSetDevice(opts_.device));
    IR_CHECK(cudaStreamSynchronize(s->stream));  // nothing of an earlier (failed) call still reads pin_in
    s->pin_used = 0;
    Buffers& b = buffers(*s, bucket_for(B));
    stage_in(*s, b);
    execute(*s, b, mode);
    fetch_out(*s, b);
  }

  void execute(Slot& s, Buffers& b, Mode mode) {
    if (opts_.cuda_graphs && b.graphs[mode]) {
      IR_CHECK(cudaGraphLaunch(b.graphs[mode], s.stream));
      return;
    }
    enqueue(s, b, mode);
    if (opts_.cuda_graphs && !b.graph_failed[mode]) capture(s, b, mode);
  }

  // Captures the mode's work (plans exist: the eager run just made them). A capture that
  // fails leaves the bucket eager for this mode; errors inside it are not fatal.
  void capture(Slot& s, Buffers& b, Mode mode) {
    // A platform that cannot capture (or a capture refused for any non-sticky reason)
    // leaves the bucket eager: this call's work is already queued.
    const cudaError_t begun = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal);
    if (begun != cudaSuccess) {
      if (cuda::is_sticky_cuda_error(begun)) cuda::throw_cuda_error(begun, "cudaStreamBeginCapture", __FILE__, __LINE__);
      cudaGetLastError();
      b.graph_failed[mode] = true;
      graphs_failed_++;
      return;
    }
    cudaGraph_t graph = nullptr;
    try {
      enqueue(s, b, mode);
    } catch (const EngineError& err) {
      cudaStreamEndCapture(s.stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      b.graph_failed[mode] = true;
      graphs_failed_++;
      // The eager run already queued this call's work: only a sticky error or OOM matters.
      if (err.code() == EngineErrorCode::DeviceLost || err.code() == EngineErrorCode::OutOfMemory) throw;
      return;
    } catch (...) {
      cudaStreamEndCapture(s.stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      b.graph_failed[mode] = true;
      throw;
    }
    cudaError_t e = cudaStreamEndCapture(s.stream, &graph);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      if (cuda::is_sticky_cuda_error(e) || e == cudaErrorMemoryAllocation) cuda::throw_cuda_error(e, "CUDA graph capture", __FILE__, __LINE__);
      cudaGetLastError();
      b.graph_failed[mode] = true;
      graphs_failed_++;
      return;
    }
    b.graphs[mode] = exec;
    graphs_captured_++;
  }

  Buffers& buffers(Slot& s, int bucket) {
    auto it = s.bufs.find(bucket);
    if (it != s.bufs.end()) return it->second;
    Buffers b;
    try {
      alloc_buffers(&b, bucket);
    } catch (const EngineError& e) {
      if (e.code() != EngineErrorCode::OutOfMemory || s.bufs.empty()) throw;
      // Free the other buckets of this slot and try once more.
      IR_CHECK(cudaStreamSynchronize(s.stream));
      for (auto& [k, o] : s.bufs) o.release();
      s.bufs.clear();
      alloc_buffers(&b, bucket);
    }
    return s.bufs.emplace(bucket, b).first->second;
  }

  void alloc_buffers(Buffers* b, int B) {
    const ModelConfig& c = cfg_;
    const size_t S = c.v_image, P = c.v_patch, N = tokens(), Np = patches(), W = c.v_width, M = c.v_mlp;
    const size_t L = c.t_len, H = c.t_hidden, I = c.t_inter, XKV = size_t(c.t_layers) * 2 * H;
    const size_t t = sizeof(T);
    struct Req {
      void** p;
      size_t bytes;
    };
    void* pix = nullptr; void* u8 = nullptr; void* x = nullptr; void* scratch = nullptr; void* emb32 = nullptr;
    void* ids = nullptr; void* mask = nullptr; void* t32 = nullptr; void* raw = nullptr; void* reward = nullptr;
    const size_t scratch_n = std::max({fc1_t_ ? size_t(0) : B * N * M, B * Np * W, B * L * I});
    Req reqs[] = {
        {&pix, B * 3 * S * S * 4}, {&u8, B * S * S * 3}, {&b->patches, B * Np * 3 * P * P * t}, {&x, B * N * W * 4},
        {&b->h, B * N * W * t}, {&b->qkv, B * N * 3 * W * t}, {&b->attn, B * N * W * t}, {&scratch, scratch_n * 4},
        {&b->mlp, B * N * M * t}, {&emb32, B * N * W * 4}, {&b->embT, B * N * W * t}, {&b->xkv, B * N * XKV * t},
        {&ids, B * L * 4}, {&mask, B * L * 4}, {&t32, B * L * H * 4}, {&b->tT, B * L * H * t},
        {&b->tqkv, B * L * 3 * H * t}, {&b->tctx, B * L * H * t}, {&b->tq, B * L * H * t}, {&b->tinter, B * L * I * t},
        {&raw, size_t(B) * 4}, {&reward, size_t(B) * 4},
    };
    size_t total = 0;
    for (const Req& r : reqs) total += (r.bytes + 255) / 256 * 256;
    IR_CHECK(cudaMalloc(&b->arena, total));
    uint8_t* base = static_cast<uint8_t*>(b->arena);
    size_t off = 0;
    for (const Req& r : reqs) {
      *r.p = base + off;
      off += (r.bytes + 255) / 256 * 256;
    }
    b->B = B;
    b->pixels = static_cast<float*>(pix);
    b->u8 = static_cast<uint8_t*>(u8);
    b->x = static_cast<float*>(x);
    b->scratch = static_cast<float*>(scratch);
    b->emb32 = static_cast<float*>(emb32);
    b->ids = static_cast<int32_t*>(ids);
    b->mask = static_cast<int32_t*>(mask);
    b->t32 = static_cast<float*>(t32);
    b->raw = static_cast<float*>(raw);
    b->reward = static_cast<float*>(reward);
  }

  // ---- the forward pass (enqueue only; capturable) -----------------------------------------
  static T* tp(void* p) { return static_cast<T*>(p); }
  static const T* tp(const void* p) { return static_cast<const T*>(p); }

  void gemm(Slot& s, int M, int N, int K, const void* A, const void* Wt, void* D, bool d_f32, const float* bias, const void* bias_t, bool acc) {
    GemmArgs g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.A = A;
    g.W = Wt;
    g.D = D;
    g.d_f32 = d_f32;
    g.bias = bias;
    g.bias_t = bias_t;
    g.accumulate = acc;
    s.gemm->run(g);
  }

  void attention(Slot& s, const T* q, long qbs, int qrs, const T* k, const T* v, long kvbs, int kvrs, T* out, long obs, int ors, const int32_t* mask,
                 int B, int H, int Tq, int Tk) {
    cuda::AttnArgs<T> a;
    a.q = q;
    a.q_batch_stride = qbs;
    a.q_row_stride = qrs;
    a.k = k;
    a.v = v;
    a.kv_batch_stride = kvbs;
    a.kv_row_stride = kvrs;
    a.out = out;
    a.out_batch_stride = obs;
    a.out_row_stride = ors;
    a.mask = mask;
    a.B = B;
    a.H = H;
    a.Tq = Tq;
    a.Tk = Tk;
    a.scale = 0.125f;  // 1 / sqrt(64)
    IR_CHECK(cuda::attention<T>(a, s.stream));
  }

  void enqueue(Slot& s, Buffers& b, Mode mode) {
    if (mode == kScore) {
      IR_CHECK(cuda::convert_f32<T>(b.emb32, tp(b.embT), long(b.B) * tokens() * cfg_.v_width, s.stream));
    } else {
      vision(s, b, mode == kEncodeU8, mode != kForward);
      if (mode != kForward) return;
    }
    cross_kv(s, b);
    text(s, b);
  }

  void vision(Slot& s, Buffers& b, bool from_u8, bool want_f32) {
    const DeviceWeights& w = *weights_;
    const ModelConfig& c = cfg_;
    const int B = b.B, S = c.v_image, P = c.v_patch, N = tokens(), Np = patches(), W = c.v_width, M = c.v_mlp, heads = c.v_heads;
    const int rows = B * N;
    cudaStream_t st = s.stream;
    if (from_u8) IR_CHECK(cuda::normalize_u8(b.u8, b.pixels, B, S, kPixMean, kPixStd, st));
    IR_CHECK(cuda::vit_patchify<T>(b.pixels, tp(b.patches), B, S, P, st));
    gemm(s, B * Np, W, 3 * P * P, b.patches, w.patch_w, b.scratch, true, w.patch_b, nullptr, false);
    IR_CHECK(cuda::vit_assemble(b.scratch, w.cls, w.vpos, b.x, B, Np, W, st));
    for (const DeviceWeights::VitBlock& k : w.blocks) {
      IR_CHECK(cuda::layernorm<T>(b.x, k.ln1_g, k.ln1_b, nullptr, tp(b.h), rows, W, kVitEps, st));
      gemm(s, rows, 3 * W, W, b.h, k.qkv_w, b.qkv, false, k.qkv_b, k.qkv_bt, false);
      const T* qkv = tp(b.qkv);
      attention(s, qkv, long(N) * 3 * W, 3 * W, qkv + W, qkv + 2 * W, long(N) * 3 * W, 3 * W, tp(b.attn), long(N) * W, W, nullptr, B, heads, N, N);
      gemm(s, rows, W, W, b.attn, k.proj_w, b.x, true, k.proj_b, nullptr, true);
      IR_CHECK(cuda::layernorm<T>(b.x, k.ln2_g, k.ln2_b, nullptr, tp(b.h), rows, W, kVitEps, st));
      if (fc1_t_) {  // bias in the epilogue, T out, then GELU in place (less traffic)
        gemm(s, rows, M, W, b.h, k.fc1_w, b.mlp, false, k.fc1_b, k.fc1_bt, false);
        IR_CHECK(cuda::gelu_inplace<T>(tp(b.mlp), long(rows) * M, st));
      } else {       // fp32 out, then bias + exact GELU → T (one rounding)
        gemm(s, rows, M, W, b.h, k.fc1_w, b.scratch, true, nullptr, nullptr, false);
        IR_CHECK(cuda::bias_gelu<T>(b.scratch, k.fc1_b, tp(b.mlp), long(rows), M, st));
      }
      gemm(s, rows, W, M, b.mlp, k.fc2_w, b.x, true, k.fc2_b, nullptr, true);
    }
    IR_CHECK(cuda::layernorm<T>(b.x, w.vnorm_g, w.vnorm_b, want_f32 ? b.emb32 : nullptr, tp(b.embT), rows, W, kVitEps, st));
  }

  void cross_kv(Slot& s, Buffers& b) {
    const DeviceWeights& w = *weights_;
    const int XKV = cfg_.t_layers * 2 * cfg_.t_hidden;
    gemm(s, b.B * tokens(), XKV, cfg_.v_width, b.embT, w.xkv_w, b.xkv, false, w.xkv_b, w.xkv_bt, false);
  }

  void text(Slot& s, Buffers& b) {
    const DeviceWeights& w = *weights_;
    const ModelConfig& c = cfg_;
    const int B = b.B, L = c.t_len, H = c.t_hidden, I = c.t_inter, heads = c.t_heads, N = tokens();
    const int rows = B * L, XKV = c.t_layers * 2 * H;
    cudaStream_t st = s.stream;
    IR_CHECK(cuda::bert_embed_ln<T>(b.ids, tp(w.word), w.tpos, w.emb_g, w.emb_b, b.t32, tp(b.tT), B, L, H, kBertEps, st));
    const T* xkv = tp(b.xkv);
    for (int l = 0; l < c.t_layers; l++) {
      const DeviceWeights::BertLayer& k = w.layers[l];
      // self-attention (post-norm)
      gemm(s, rows, 3 * H, H, b.tT, k.qkv_w, b.tqkv, false, k.qkv_b, k.qkv_bt, false);
      const T* qkv = tp(b.tqkv);
      attention(s, qkv, long(L) * 3 * H, 3 * H, qkv + H, qkv + 2 * H, long(L) * 3 * H, 3 * H, tp(b.tctx), long(L) * H, H, b.mask, B, heads, L, L);
      gemm(s, rows, H, H, b.tctx, k.ao_w, b.t32, true, k.ao_b, nullptr, true);
      IR_CHECK(cuda::layernorm<T>(b.t32, k.ln1_g, k.ln1_b, b.t32, tp(b.tT), rows, H, kBertEps, st));
      // cross-attention over this layer's slice of the wide K/V: K at l*2H, V at l*2H + H
      gemm(s, rows, H, H, b.tT, k.cq_w, b.tq, false, k.cq_b, k.cq_bt, false);
      const T* kl = xkv + size_t(l) * 2 * H;
      attention(s, tp(b.tq), long(L) * H, H, kl, kl + H, long(N) * XKV, XKV, tp(b.tctx), long(L) * H, H, nullptr, B, heads, L, N);
      gemm(s, rows, H, H, b.tctx, k.co_w, b.t32, true, k.co_b, nullptr, true);
      IR_CHECK(cuda::layernorm<T>(b.t32, k.ln2_g, k.ln2_b, b.t32, tp(b.tT), rows, H, kBertEps, st));
      // FFN
      gemm(s, rows, I, H, b.tT, k.in_w, b.scratch, true, nullptr, nullptr, false);
      IR_CHECK(cuda::bias_gelu<T>(b.scratch, k.in_b, tp(b.tinter), long(rows), I, st));
      gemm(s, rows, H, I, b.tinter, k.out_w, b.t32, true, k.out_b, nullptr, true);
      IR_CHECK(cuda::layernorm<T>(b.t32, k.ln3_g, k.ln3_b, b.t32, tp(b.tT), rows, H, kBertEps, st));
    }
    IR_CHECK(cuda::reward_head(b.t32, L, H, w.head_w, w.head_b, static_cast<float>(c.reward_mean), static_cast<float>(c.reward_std), b.raw, b.reward, B,
                               st));
  }

  EngineOptions opts_;
  ModelConfig cfg_;
  std::unique_ptr<DeviceWeights> weights_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<size_t> next_slot_{0};
  std::atomic<bool> disposed_{false};
  std::atomic<bool> lost_{false};
  std::atomic<int> graphs_captured_{0}, graphs_failed_{0};
  // IMAGEREWARD_FC1_T=1: ViT fc1 writes T with the bias in the cuBLASLt epilogue, then GELU
  // in place (engine_kernels.cu). Default: fp32 out + bias_gelu (one rounding, more traffic).
  bool fc1_t_ = false;
};

template <typename T>
std::unique_ptr<Engine> make_engine(const EngineOptions& opts) {
  auto e = std::make_unique<EngineImpl<T>>(opts);
  e->init();  // on throw, ~EngineImpl disposes what init built
  return e;
}

}  // namespace

std::unique_ptr<Engine> Engine::load(const EngineOptions& opts) {
  try {
    if (opts.fp16) return make_engine<__half>(opts);
    return make_engine<__nv_bfloat16>(opts);
  } catch (const std::bad_alloc&) {
    throw EngineError(EngineErrorCode::OutOfMemory, "host memory allocation failed while loading the engine");
  }
}

}  // namespace ir
