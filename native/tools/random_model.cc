// random_model: writes the deterministic random ImageReward model directory of
// gpu-service/model/random-model.ts (`imagereward demo-model`) on machines
// without Node — the GPU check machine — with bit-identical tensor values, so
// fp32 references computed here with ONNX Runtime apply there.
//
//   random_model --out <dir> [--seed N] [--size full|tiny]
//
// Writes <dir>/model.safetensors (F32, upstream tensor names; header formatting
// may differ from the TypeScript writer: compare tensors, not file hashes) and
// <dir>/config.json (model-dir format, model_id "random-demo").
//
// The generator, as in random-model.ts (RANDOM_INIT_SCHEME
// 'irwin-hall-4x16bit/xoshiro128**-splitmix64/v1'): per tensor, state =
// seed XOR fnv1a64(name); two splitmix64 draws give xoshiro128**'s four 32-bit
// words (low half first); each sample sums the four 16-bit halves of two
// xoshiro128** outputs (Irwin-Hall, 4 terms) and maps it to
// mean + (sum - 131070) * std / sqrt(4 (65536^2 - 1) / 12) in double, rounded
// once to float. Integer arithmetic and correctly rounded double operations
// only (build without -ffast-math / FMA contraction), so every platform
// produces the same bits. The std/mean per tensor follow initFor().
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
};

struct Config {
  int v_width, v_layers, v_heads, v_patch, v_image, v_mlp_ratio;
  int t_hidden, t_layers, t_heads, t_inter, t_vocab, t_max_pos, t_enc;
  int mlp[6];
};

// IMAGEREWARD_CONFIG and TINY_RANDOM_CONFIG of the TypeScript side.
const Config kFull = {1024, 24, 16, 16, 224, 4, 768, 12, 12, 3072, 30524, 512, 1024, {768, 1024, 128, 64, 16, 1}};
const Config kTiny = {32, 2, 2, 16, 224, 4, 32, 2, 2, 128, 30524, 64, 32, {32, 32, 16, 8, 4, 1}};

// Same order as requiredTensors() in gpu-service/model/architecture.ts.
std::vector<Spec> required_tensors(const Config& c) {
  std::vector<Spec> out;
  auto add = [&](const std::string& n, std::vector<int64_t> s) { out.push_back({n, std::move(s)}); };
  auto linear = [&](const std::string& p, int64_t o, int64_t i) {
    add(p + ".weight", {o, i});
    add(p + ".bias", {o});
  };
  auto norm = [&](const std::string& p, int64_t n) {
    add(p + ".weight", {n});
    add(p + ".bias", {n});
  };
  const int64_t patches = static_cast<int64_t>(c.v_image / c.v_patch) * (c.v_image / c.v_patch);
  const std::string vp = "blip.visual_encoder";
  add(vp + ".cls_token", {1, 1, c.v_width});
  add(vp + ".pos_embed", {1, patches + 1, c.v_width});
  add(vp + ".patch_embed.proj.weight", {c.v_width, 3, c.v_patch, c.v_patch});
  add(vp + ".patch_embed.proj.bias", {c.v_width});
  for (int i = 0; i < c.v_layers; i++) {
    const std::string b = vp + ".blocks." + std::to_string(i);
    norm(b + ".norm1", c.v_width);
    linear(b + ".attn.qkv", 3 * c.v_width, c.v_width);
    linear(b + ".attn.proj", c.v_width, c.v_width);
    norm(b + ".norm2", c.v_width);
    linear(b + ".mlp.fc1", c.v_width * c.v_mlp_ratio, c.v_width);
    linear(b + ".mlp.fc2", c.v_width, c.v_width * c.v_mlp_ratio);
  }
  norm(vp + ".norm", c.v_width);
  const std::string tp = "blip.text_encoder";
  add(tp + ".embeddings.word_embeddings.weight", {c.t_vocab, c.t_hidden});
  add(tp + ".embeddings.position_embeddings.weight", {c.t_max_pos, c.t_hidden});
  norm(tp + ".embeddings.LayerNorm", c.t_hidden);
  for (int i = 0; i < c.t_layers; i++) {
    const std::string b = tp + ".encoder.layer." + std::to_string(i);
    linear(b + ".attention.self.query", c.t_hidden, c.t_hidden);
    linear(b + ".attention.self.key", c.t_hidden, c.t_hidden);
    linear(b + ".attention.self.value", c.t_hidden, c.t_hidden);
    linear(b + ".attention.output.dense", c.t_hidden, c.t_hidden);
    norm(b + ".attention.output.LayerNorm", c.t_hidden);
    linear(b + ".crossattention.self.query", c.t_hidden, c.t_hidden);
    linear(b + ".crossattention.self.key", c.t_hidden, c.t_enc);
    linear(b + ".crossattention.self.value", c.t_hidden, c.t_enc);
    linear(b + ".crossattention.output.dense", c.t_hidden, c.t_hidden);
    norm(b + ".crossattention.output.LayerNorm", c.t_hidden);
    linear(b + ".intermediate.dense", c.t_inter, c.t_hidden);
    linear(b + ".output.dense", c.t_hidden, c.t_inter);
    norm(b + ".output.LayerNorm", c.t_hidden);
  }
  const int idx[5] = {0, 2, 4, 6, 7};
  for (int i = 0; i < 5; i++) linear("mlp.layers." + std::to_string(idx[i]), c.mlp[i + 1], c.mlp[i]);
  return out;
}

bool ends_with(const std::string& s, const std::string& suf) { return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0; }

// initFor() of random-model.ts.
void init_for(const Spec& s, double* std_, double* mean) {
  static const std::regex norm_re("(?:^|\\.)(?:norm\\d?|LayerNorm)\\.(?:weight|bias)$");
  if (s.name.rfind("mlp.layers.", 0) == 0) {
    if (ends_with(s.name, ".weight")) {
      *std_ = 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
      *mean = 0;
      return;
    }
    *std_ = 0.02;
    *mean = 0;
    return;
  }
  if (std::regex_search(s.name, norm_re)) {
    *std_ = 0.02;
    *mean = ends_with(s.name, ".weight") ? 1 : 0;
    return;
  }
  if (ends_with(s.name, ".bias")) {
    *std_ = 0.02;
    *mean = 0;
    return;
  }
  double fan_in = 768;
  if (s.shape.size() >= 2 && s.name.find("embed") == std::string::npos && !ends_with(s.name, "cls_token")) {
    fan_in = 1;
    for (size_t i = 1; i < s.shape.size(); i++) fan_in *= static_cast<double>(s.shape[i]);
  }
  *std_ = std::max(0.02, 0.55 / std::sqrt(fan_in));
  *mean = 0;
}

uint64_t splitmix64(uint64_t* state) {
  *state += 0x9e3779b97f4a7c15ull;
  uint64_t z = *state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

void fill_normal(float* out, size_t n, uint64_t seed, const std::string& name, double std_, double mean) {
  uint64_t st = seed ^ fnv1a64(name);
  uint32_t w[4];
  for (int i = 0; i < 2; i++) {
    const uint64_t z = splitmix64(&st);
    w[2 * i] = static_cast<uint32_t>(z);
    w[2 * i + 1] = static_cast<uint32_t>(z >> 32);
  }
  uint32_t s0 = w[0], s1 = w[1], s2 = w[2], s3 = w[3];
  if ((s0 | s1 | s2 | s3) == 0) s0 = 1;
  const double scale = std_ / std::sqrt((4.0 * (65536.0 * 65536.0 - 1.0)) / 12.0);
  auto next = [&]() {
    const uint32_t r = rotl(s1 * 5u, 7) * 9u;
    const uint32_t t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return r;
  };
  for (size_t i = 0; i < n; i++) {
    const uint32_t r = next();
    const uint32_t q = next();
    const int64_t sum = static_cast<int64_t>(r & 0xffff) + (r >> 16) + (q & 0xffff) + (q >> 16);
    const double prod = static_cast<double>(sum - 131070) * scale;  // rounded, then added: no FMA
    volatile double v = prod;
    out[i] = static_cast<float>(mean + v);
  }
}

std::string shape_json(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); i++) o += (i ? "," : "") + std::to_string(s[i]);
  return o + "]";
}

int usage() {
  std::cerr << "usage: random_model --out <dir> [--seed N] [--size full|tiny]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, size = "full";
  uint64_t seed = 0;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (a == "--size" && i + 1 < argc) size = argv[++i];
    else return usage();
  }
  if (out.empty() || (size != "full" && size != "tiny")) return usage();
  const Config& c = size == "full" ? kFull : kTiny;
  const std::vector<Spec> specs = required_tensors(c);

  std::string header = "{";
  uint64_t offset = 0;
  for (const Spec& s : specs) {
    uint64_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
    header += "\"" + s.name + "\":{\"dtype\":\"F32\",\"shape\":" + shape_json(s.shape) + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + 4 * n) + "]},";
    offset += 4 * n;
  }
  header += "\"__metadata__\":{\"format\":\"pt\",\"model_id\":\"random-demo\",\"seed\":\"" + std::to_string(seed) + "\"}}";
  while ((header.size() + 8) % 8 != 0) header += ' ';

  mkdir(out.c_str(), 0755);
  std::ofstream f(out + "/model.safetensors", std::ios::binary);
  if (!f) {
    std::cerr << "cannot write " << out << "/model.safetensors\n";
    return 1;
  }
  const uint64_t hlen = header.size();
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = static_cast<unsigned char>(hlen >> (8 * i));
  f.write(reinterpret_cast<const char*>(len8), 8);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  std::vector<float> buf;
  for (const Spec& s : specs) {
    size_t n = 1;
    for (int64_t d : s.shape) n *= static_cast<size_t>(d);
    buf.resize(n);
    double sd = 0, mean = 0;
    init_for(s, &sd, &mean);
    fill_normal(buf.data(), n, seed, s.name, sd, mean);
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n * 4));  // little-endian hosts only
  }
  f.close();
  if (!f) {
    std::cerr << "write failed\n";
    return 1;
  }
  std::ofstream cj(out + "/config.json");
  cj << "{\n  \"format\": \"imagereward-model-dir\",\n  \"format_version\": 1,\n  \"model_id\": \"random-demo\",\n"
     << "  \"config\": {\"vision\": {\"width\": " << c.v_width << ", \"layers\": " << c.v_layers << ", \"heads\": " << c.v_heads << ", \"patch\": " << c.v_patch
     << ", \"image\": " << c.v_image << ", \"mlpRatio\": " << c.v_mlp_ratio << "}, \"text\": {\"hidden\": " << c.t_hidden << ", \"layers\": " << c.t_layers
     << ", \"heads\": " << c.t_heads << ", \"intermediate\": " << c.t_inter << ", \"vocab\": " << c.t_vocab << ", \"maxPositions\": " << c.t_max_pos
     << ", \"encoderWidth\": " << c.t_enc << "}, \"mlp\": [" << c.mlp[0] << ", " << c.mlp[1] << ", " << c.mlp[2] << ", " << c.mlp[3] << ", " << c.mlp[4] << ", "
     << c.mlp[5] << "]},\n"
     << "  \"normalization\": {\"mean\": 0.16717362830052426, \"std\": 1.0333394966054072},\n  \"dtype\": \"F32\",\n  \"tensors\": " << specs.size()
     << ",\n  \"source\": {\"file\": \"random weights (seed " << seed << "), native/tools/random_model\", \"bytes\": " << (8 + hlen + offset)
     << ", \"sha256\": \"\", \"generated\": {\"by\": \"native/tools/random_model\", \"seed\": " << seed
     << ", \"init\": \"irwin-hall-4x16bit/xoshiro128**-splitmix64/v1\", \"init_version\": 1}}\n}\n";
  std::cout << out << "\n";
  return 0;
}
