// The CUDA engine's C++ surface: plain C++ (no CUDA or Node headers), so the
// N-API binding (src/engine_binding.cc) and the standalone GPU check driver
// (tools/engine_check.cc, run on GPU machines without Node) share it.
//
// Thread-safety: one Engine may be called from several threads; calls are
// serialized per engine by an internal mutex except that batches on different
// streams may overlap (see engine.cu). Every failure throws EngineError; nothing
// in the engine prints, exits or aborts.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ir {

enum class EngineErrorCode {
  NoDevice,        // no CUDA device / driver (cudaErrorNoDevice, cudaErrorInsufficientDriver)
  CublasMissing,   // libcublasLt could not be loaded at run time
  OutOfMemory,     // device or pinned allocation failed: retry with a smaller batch
  BadModel,        // model.safetensors / config.json missing a tensor, wrong shape, unreadable
  BadInput,        // sizes or ids out of range
  Cuda,            // any other CUDA error (non-sticky)
  Cublas,          // cuBLASLt status != success
  DeviceLost,      // sticky error (illegal address, launch failure, ECC…): the engine is unusable
  Disposed,        // called after dispose()
};

const char* engine_error_code_name(EngineErrorCode c);  // "ENGINE_NO_DEVICE", "ENGINE_OOM", …

class EngineError : public std::runtime_error {
 public:
  EngineError(EngineErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  EngineErrorCode code() const { return code_; }

 private:
  EngineErrorCode code_;
};

struct ModelConfig {
  // ViT
  int v_width = 1024, v_layers = 24, v_heads = 16, v_patch = 16, v_image = 224, v_mlp = 4096;
  // BERT
  int t_hidden = 768, t_layers = 12, t_heads = 12, t_inter = 3072, t_vocab = 30524, t_max_pos = 512, t_len = 35;
  // reward head widths, hidden first, 1 last (5 linear layers)
  std::vector<int> mlp = {768, 1024, 128, 64, 16, 1};
  double reward_mean = 0.16717362830052426, reward_std = 1.0333394966054072;
};

struct EngineOptions {
  std::string model_dir;          // holds model.safetensors + config.json (format of gpu-service/model/model-dir.ts)
  int device = 0;
  bool fp16 = false;              // default bf16 storage
  int max_batch = 256;            // largest batch forward() accepts; buffers sized lazily per bucket
  bool cuda_graphs = true;
  int streams = 2;                // batches in flight
};

struct DeviceInfo {
  int device = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_memory = 0, free_memory = 0;
  size_t weight_bytes = 0;        // device memory held by weights
  int driver_version = 0, runtime_version = 0;
  std::string cublaslt_version;   // e.g. "13.0.0" (from cublasLtGetVersion) or "" when not loaded
  int graphs_captured = 0;        // CUDA graphs captured so far (one per bucket, entry point and stream)
  int graphs_failed = 0;          // captures that failed (those buckets run eagerly)
  int gemm_bias_seeded = 0;       // GEMM plans whose bias add_bias seeds: cuBLASLt had no BIAS epilogue
};

struct BuildInfoCuda {
  bool cuda = false;
  std::string archs;              // e.g. "80;90"
  int cuda_runtime_version = 0;   // CUDART_VERSION at build
  std::string cublaslt;           // "dlopen" (loaded at run time) and the soname tried first
};
BuildInfoCuda cuda_build_info();

class Engine {
 public:
  // Loads weights to the device. Throws EngineError.
  static std::unique_ptr<Engine> load(const EngineOptions& opts);
  virtual ~Engine() = default;

  virtual const ModelConfig& config() const = 0;
  virtual DeviceInfo device_info() const = 0;

  // pixels fp32 [B, 3, S, S] (host) → image embeddings fp32 [B, 197, v_width] (host).
  virtual void encode_images(const float* pixels, int B, float* embeds_out) = 0;
  // Same from uint8 HWC [B, S, S, 3] after resize/crop: normalized on the device.
  virtual void encode_images_u8(const uint8_t* hwc, int B, float* embeds_out) = 0;
  // ids / mask int32 [B, t_len]; embeds fp32 [B, 197, v_width] (host) → reward, raw fp32 [B].
  virtual void score_text(const int32_t* ids, const int32_t* mask, const float* embeds, int B, float* reward, float* raw) = 0;
  // Whole pass without copying embeddings back: pixels fp32 [B,3,S,S] → reward/raw [B].
  virtual void forward(const float* pixels, const int32_t* ids, const int32_t* mask, int B, float* reward, float* raw) = 0;

  // Frees device memory; later calls throw Disposed. Idempotent.
  virtual void dispose() = 0;
  // True after a sticky device error.
  virtual bool lost() const = 0;
};

}  // namespace ir
