// weights.h — the model directory (gpu-service/model/model-dir.ts) → device weights.
//
//   config.json        {config: {vision, text, mlp}, normalization: {mean, std}, …}
//                      read with a tiny JSON reader of our own (json_parse below)
//   model.safetensors  [u64 LE header length][JSON header][data]; mmap'd; every tensor the
//                      forward pass reads is checked (name, dtype F32, shape, byte range)
//
// Device layout (one cudaMalloc arena, 256-byte aligned slices; T = bf16 or fp16):
//   GEMM weights            T, PyTorch [out, in]
//   LayerNorm γ/β, biases,  fp32
//   ViT cls / pos embed, BERT position embeddings
//   BERT word embeddings    T [vocab, hidden]
//   BERT self-attn q|k|v    concatenated at load into one [3h, h] weight (+ [3h] bias), so
//                           the text self-attention is one GEMM whose output has the ViT
//                           qkv's [B, L, 3, H, 64] layout
//   cross-attn k|v          all layers' key/value weights concatenated into ONE
//                           [layers * 2 * h, E] weight (+ bias): layer l's key rows at
//                           l*2h, value rows at l*2h + h, so the image K/V of every layer
//                           is one wide GEMM right after the ViT
//   reward head             mlp.layers.{0,2,4,6,7} (no activations) multiplied out in fp64
//                           into w [h] and b, rounded once to fp32
// Biases of GEMMs whose output is T also get a T copy (…_bt): the fallback when a
// cuBLASLt build offers no fp32-bias algorithm for a T output (gemm.cuh).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/engine.h"

namespace ir {

// ---- a tiny JSON reader (objects, arrays, strings, numbers, true/false/null) ----------
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;
  const Json* get(const std::string& k) const;  // nullptr when absent or not an object
};
// Throws EngineError(BadModel) naming `what` and the byte offset on malformed input.
Json json_parse(const char* text, size_t len, const std::string& what);

// ---- host side ---------------------------------------------------------------------------
// config.json → ModelConfig (+ checks the engine's own limits: head dim 64, encoder width ==
// vision width, widths divisible by 4). Throws EngineError(BadModel).
ModelConfig read_model_config(const std::string& model_dir);

// model.safetensors, mapped read-only.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws BadModel
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  // The fp32 data of `name`, after checking dtype F32 and the shape. Throws BadModel.
  const float* get(const std::string& name, const std::vector<int64_t>& shape) const;
  size_t tensor_count() const { return tensors_.size(); }
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
  };
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  uint64_t data_len_ = 0;
  std::map<std::string, Entry> tensors_;
};

// The folded reward head: raw = dot(cls_hidden, w) + b (fp64 product, rounded once).
struct FoldedHead {
  std::vector<float> w;
  float b = 0;
};
FoldedHead fold_head(const SafetensorsFile& f, const ModelConfig& c);

// Checks every tensor the forward needs (no device). Returns the device bytes the weights
// will take (T = 2 bytes).
size_t validate_model(const SafetensorsFile& f, const ModelConfig& c);

// ---- device side -------------------------------------------------------------------------
struct DeviceWeights {
  struct VitBlock {
    const float *ln1_g, *ln1_b;
    const void* qkv_w; const float* qkv_b; const void* qkv_bt;  // [3W, W]
    const void* proj_w; const float* proj_b;                     // [W, W]
    const float *ln2_g, *ln2_b;
    const void* fc1_w; const float* fc1_b; const void* fc1_bt;   // [mlp, W]
    const void* fc2_w; const float* fc2_b;                       // [W, mlp]
  };
  struct BertLayer {
    const void* qkv_w; const float* qkv_b; const void* qkv_bt;  // [3h, h] (q | k | v)
    const void* ao_w; const float* ao_b;                          // attention.output.dense
    const float *ln1_g, *ln1_b;                                   // attention.output.LayerNorm
    const void* cq_w; const float* cq_b; const void* cq_bt;       // crossattention.self.query
    const void* co_w; const float* co_b;                          // crossattention.output.dense
    const float *ln2_g, *ln2_b;                                   // crossattention.output.LayerNorm
    const void* in_w; const float* in_b;                          // intermediate.dense [I, h]
    const void* out_w; const float* out_b;                        // output.dense [h, I]
    const float *ln3_g, *ln3_b;                                   // output.LayerNorm
  };
  bool fp16 = false;
  // ViT
  const void* patch_w = nullptr; const float* patch_b = nullptr;  // [W, 3*P*P]
  const float* cls = nullptr;                                      // [W]
  const float* vpos = nullptr;                                     // [N + 1, W]
  std::vector<VitBlock> blocks;
  const float *vnorm_g = nullptr, *vnorm_b = nullptr;
  // cross-attention K/V of every layer, one weight
  const void* xkv_w = nullptr; const float* xkv_b = nullptr; const void* xkv_bt = nullptr;  // [layers*2h, E]
  // BERT
  const void* word = nullptr;                                      // T [vocab, h]
  const float* tpos = nullptr;                                     // [maxPos, h]
  const float *emb_g = nullptr, *emb_b = nullptr;
  std::vector<BertLayer> layers;
  // head
  const float* head_w = nullptr;                                   // [h]
  float head_b = 0;

  void* arena = nullptr;
  size_t bytes = 0;

  ~DeviceWeights();  // frees the arena
};

// Reads, validates and uploads (current device). Throws EngineError (BadModel, OutOfMemory,
// Cuda, …). `cfg` receives the model's config.
std::unique_ptr<DeviceWeights> load_weights(const std::string& model_dir, bool fp16, ModelConfig* cfg);

}  // namespace ir
