// weights.cc — model directory → device weights (see weights.h for the layout).
#include "cuda/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cuda/gemm.cuh"  // IR_CHECK
#include "cuda/ops.cuh"   // convert_f32

namespace ir {
namespace {

[[noreturn]] void bad(const std::string& msg) { throw EngineError(EngineErrorCode::BadModel, msg); }

// ---- JSON -----------------------------------------------------------------------------
struct Parser {
  const char* s;
  size_t n, i = 0;
  const std::string& what;
  int depth = 0;

  [[noreturn]] void fail(const char* msg) { bad(what + ": malformed JSON at byte " + std::to_string(i) + ": " + msg); }
  void ws() {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  }
  bool lit(const char* w) {
    const size_t l = std::strlen(w);
    if (n - i >= l && std::memcmp(s + i, w, l) == 0) {
      i += l;
      return true;
    }
    return false;
  }
  static void utf8(std::string* out, unsigned cp) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  unsigned hex4() {
    if (n - i < 4) fail("short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
      const char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    if (i >= n || s[i] != '"') fail("expected a string");
    i++;
    std::string out;
    while (true) {
      if (i >= n) fail("unterminated string");
      const char c = s[i++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= n) fail("unterminated escape");
      const char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u') {
            i += 2;
            const unsigned lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(&out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  Json value() {
    if (++depth > 64) fail("nested too deeply");
    ws();
    if (i >= n) fail("unexpected end");
    Json v;
    const char c = s[i];
    if (c == '{') {
      i++;
      v.kind = Json::Object;
      ws();
      if (i < n && s[i] == '}') {
        i++;
      } else {
        while (true) {
          ws();
          std::string k = string();
          ws();
          if (i >= n || s[i] != ':') fail("expected ':'");
          i++;
          v.obj[k] = value();
          ws();
          if (i < n && s[i] == ',') { i++; continue; }
          if (i < n && s[i] == '}') { i++; break; }
          fail("expected ',' or '}'");
        }
      }
    } else if (c == '[') {
      i++;
      v.kind = Json::Array;
      ws();
      if (i < n && s[i] == ']') {
        i++;
      } else {
        while (true) {
          v.arr.push_back(value());
          ws();
          if (i < n && s[i] == ',') { i++; continue; }
          if (i < n && s[i] == ']') { i++; break; }
          fail("expected ',' or ']'");
        }
      }
    } else if (c == '"') {
      v.kind = Json::String;
      v.str = string();
    } else if (lit("true")) {
      v.kind = Json::Bool;
      v.b = true;
    } else if (lit("false")) {
      v.kind = Json::Bool;
    } else if (lit("null")) {
      v.kind = Json::Null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const size_t st = i;
      while (i < n && (std::strchr("+-.eE", s[i]) || (s[i] >= '0' && s[i] <= '9'))) i++;
      const std::string tok(s + st, i - st);
      char* end = nullptr;
      v.kind = Json::Number;
      v.num = std::strtod(tok.c_str(), &end);
      if (!end || *end) fail("bad number");
    } else {
      fail("unexpected character");
    }
    depth--;
    return v;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Json& need(const Json* v, const std::string& what) {
  if (!v) bad("config.json lacks " + what);
  return *v;
}

int need_int(const Json* parent, const char* key, const std::string& path) {
  const Json& v = need(parent ? parent->get(key) : nullptr, path + "." + key);
  if (v.kind != Json::Number || v.num != std::floor(v.num) || v.num <= 0 || v.num > 1e9) bad("config.json " + path + "." + key + " must be a positive integer");
  return static_cast<int>(v.num);
}

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t k = 0; k < s.size(); k++) o += (k ? "," : "") + std::to_string(s[k]);
  return o + "]";
}

}  // namespace

const Json* Json::get(const std::string& k) const {
  if (kind != Object) return nullptr;
  auto it = obj.find(k);
  return it == obj.end() ? nullptr : &it->second;
}

Json json_parse(const char* text, size_t len, const std::string& what) {
  Parser p{text, len, 0, what};
  Json v = p.value();
  p.ws();
  if (p.i != len) p.fail("trailing characters");
  return v;
}

// ---- config.json ----------------------------------------------------------------------
ModelConfig read_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  const std::string text = read_file(path);
  const Json root = json_parse(text.data(), text.size(), path);
  const Json& cfg = need(root.get("config"), "config");
  const Json* v = cfg.get("vision");
  const Json* t = cfg.get("text");
  need(v, "config.vision");
  need(t, "config.text");
  ModelConfig c;
  c.v_width = need_int(v, "width", "config.vision");
  c.v_layers = need_int(v, "layers", "config.vision");
  c.v_heads = need_int(v, "heads", "config.vision");
  c.v_patch = need_int(v, "patch", "config.vision");
  c.v_image = need_int(v, "image", "config.vision");
  const Json& ratio = need(v->get("mlpRatio"), "config.vision.mlpRatio");
  if (ratio.kind != Json::Number || ratio.num <= 0) bad("config.json config.vision.mlpRatio must be a positive number");
  const double mlp = c.v_width * ratio.num;
  if (mlp != std::floor(mlp)) bad("config.json: vision width * mlpRatio is not an integer");
  c.v_mlp = static_cast<int>(mlp);
  c.t_hidden = need_int(t, "hidden", "config.text");
  c.t_layers = need_int(t, "layers", "config.text");
  c.t_heads = need_int(t, "heads", "config.text");
  c.t_inter = need_int(t, "intermediate", "config.text");
  c.t_vocab = need_int(t, "vocab", "config.text");
  c.t_max_pos = need_int(t, "maxPositions", "config.text");
  const int enc = need_int(t, "encoderWidth", "config.text");
  const Json& m = need(cfg.get("mlp"), "config.mlp");
  if (m.kind != Json::Array) bad("config.json config.mlp must be an array");
  c.mlp.clear();
  for (const Json& x : m.arr) {
    if (x.kind != Json::Number || x.num != std::floor(x.num) || x.num <= 0) bad("config.json config.mlp must hold positive integers");
    c.mlp.push_back(static_cast<int>(x.num));
  }
  if (const Json* norm = root.get("normalization")) {
    const Json* mean = norm->get("mean");
    const Json* sd = norm->get("std");
    if (!mean || !sd || mean->kind != Json::Number || sd->kind != Json::Number || sd->num == 0) bad("config.json normalization must hold numbers mean and std");
    c.reward_mean = mean->num;
    c.reward_std = sd->num;
  }
  // The engine's own limits (the attention kernel's head dim is 64).
  if (c.v_width % c.v_heads || c.v_width / c.v_heads != 64) bad("engine needs vision head dim 64 (width " + std::to_string(c.v_width) + ", heads " + std::to_string(c.v_heads) + ")");
  if (c.t_hidden % c.t_heads || c.t_hidden / c.t_heads != 64) bad("engine needs text head dim 64 (hidden " + std::to_string(c.t_hidden) + ", heads " + std::to_string(c.t_heads) + ")");
  if (enc != c.v_width) bad("config.json text.encoderWidth must equal vision.width");
  if (c.v_image % c.v_patch) bad("config.json vision.image must be divisible by vision.patch");
  if (c.v_width % 4 || c.t_hidden % 4 || c.v_mlp % 4 || c.t_inter % 4) bad("engine needs widths divisible by 4");
  if (c.mlp.size() != 6 || c.mlp.front() != c.t_hidden || c.mlp.back() != 1) bad("config.json mlp must list 6 widths, text hidden first, 1 last");
  const int tokens = (c.v_image / c.v_patch) * (c.v_image / c.v_patch) + 1;
  if (tokens > 256) bad("engine supports at most 256 image tokens (the attention kernel's limit); this model has " + std::to_string(tokens));
  if (c.t_len > c.t_max_pos) bad("config.json text.maxPositions is below the prompt length " + std::to_string(c.t_len));
  return c;
}

// ---- model.safetensors ----------------------------------------------------------------
SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 8) {
    ::close(fd);
    bad(path + " is not a safetensors file (too small)");
  }
  size_ = static_cast<size_t>(st.st_size);
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    bad("cannot mmap " + path + ": " + std::strerror(errno));
  }
  const uint8_t* base = static_cast<const uint8_t*>(map_);
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | base[k];
  if (hlen > 100u * 1024 * 1024 || 8 + hlen > size_) {
    ::munmap(map_, size_);
    map_ = nullptr;
    bad(path + ": bad safetensors header length " + std::to_string(hlen));
  }
  data_ = base + 8 + hlen;
  data_len_ = size_ - 8 - hlen;
  try {
    const Json h = json_parse(reinterpret_cast<const char*>(base + 8), hlen, path + " header");
    if (h.kind != Json::Object) bad(path + ": header is not a JSON object");
    for (const auto& [name, v] : h.obj) {
      if (name == "__metadata__") continue;
      const Json* dt = v.get("dtype");
      const Json* sh = v.get("shape");
      const Json* off = v.get("data_offsets");
      if (!dt || dt->kind != Json::String || !sh || sh->kind != Json::Array || !off || off->kind != Json::Array || off->arr.size() != 2)
        bad(path + ": bad header entry for " + name);
      Entry e;
      e.dtype = dt->str;
      for (const Json& d : sh->arr) {
        if (d.kind != Json::Number || d.num < 0 || d.num != std::floor(d.num)) bad(path + ": bad shape for " + name);
        e.shape.push_back(static_cast<int64_t>(d.num));
      }
      if (off->arr[0].kind != Json::Number || off->arr[1].kind != Json::Number) bad(path + ": bad data_offsets for " + name);
      e.begin = static_cast<uint64_t>(off->arr[0].num);
      e.end = static_cast<uint64_t>(off->arr[1].num);
      if (e.end < e.begin || e.end > data_len_) bad(path + ": data_offsets of " + name + " out of the file");
      tensors_.emplace(name, std::move(e));
    }
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const float* SafetensorsFile::get(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) bad(path_ + " is missing tensor " + name + " (expected F32 " + shape_str(shape) + ")");
  const Entry& e = it->second;
  if (e.dtype != "F32") bad("tensor " + name + " has dtype " + e.dtype + ", expected F32");
  if (e.shape != shape) bad("tensor " + name + " has shape " + shape_str(e.shape) + ", expected " + shape_str(shape));
  if (e.end - e.begin != static_cast<uint64_t>(numel(shape)) * 4) bad("tensor " + name + ": byte range does not match its shape");
  return reinterpret_cast<const float*>(data_ + e.begin);
}

// ---- the reward head, folded ------------------------------------------------------------
FoldedHead fold_head(const SafetensorsFile& f, const ModelConfig& c) {
  static const int kIdx[5] = {0, 2, 4, 6, 7};
  std::vector<std::vector<double>> W(5), B(5);
  for (int j = 0; j < 5; j++) {
    const int out = c.mlp[j + 1], in = c.mlp[j];
    const float* w = f.get("mlp.layers." + std::to_string(kIdx[j]) + ".weight", {out, in});
    const float* b = f.get("mlp.layers." + std::to_string(kIdx[j]) + ".bias", {out});
    W[j].resize(static_cast<size_t>(out) * in);
    B[j].resize(out);
    for (size_t k = 0; k < W[j].size(); k++) {
      float x;
      std::memcpy(&x, w + k, 4);
      W[j][k] = x;
    }
    for (int k = 0; k < out; k++) {
      float x;
      std::memcpy(&x, b + k, 4);
      B[j][k] = x;
    }
  }
  // Row vector v = W4 · W3 · W2 · W1 · W0 (1 × h), right to left from the 1-wide end.
  std::vector<double> v(W[4].begin(), W[4].end());  // [1, mlp[4]]
  for (int j = 3; j >= 0; j--) {
    const int out = c.mlp[j + 1], in = c.mlp[j];
    std::vector<double> nv(in, 0.0);
    for (int o = 0; o < out; o++)
      for (int k = 0; k < in; k++) nv[k] += v[o] * W[j][static_cast<size_t>(o) * in + k];
    v.swap(nv);
  }
  // Bias: propagate b0 through the remaining layers.
  std::vector<double> cvec = B[0];
  for (int j = 1; j < 5; j++) {
    const int out = c.mlp[j + 1], in = c.mlp[j];
    std::vector<double> nc(out);
    for (int o = 0; o < out; o++) {
      double s = B[j][o];
      for (int k = 0; k < in; k++) s += W[j][static_cast<size_t>(o) * in + k] * cvec[k];
      nc[o] = s;
    }
    cvec.swap(nc);
  }
  FoldedHead h;
  h.w.resize(v.size());
  for (size_t k = 0; k < v.size(); k++) h.w[k] = static_cast<float>(v[k]);
  h.b = static_cast<float>(cvec[0]);
  return h;
}

// ---- the upload plan --------------------------------------------------------------------
namespace {

struct Src {
  const float* data;
  size_t n;
};
struct Item {
  bool t;                 // stored as T (else fp32)
  std::vector<Src> srcs;  // concatenated in order
  const void** dst_t = nullptr;
  const float** dst_f = nullptr;
  size_t n = 0, offset = 0;
};

constexpr size_t kAlign = 256;

struct Planner {
  const SafetensorsFile& f;
  std::vector<Item> items;

  Src src(const std::string& name, std::vector<int64_t> shape) {
    const float* p = f.get(name, shape);
    return {p, static_cast<size_t>(numel(shape))};
  }
  void add_t(const void** dst, std::vector<Src> s) { push(true, dst, nullptr, std::move(s)); }
  void add_f(const float** dst, std::vector<Src> s) { push(false, nullptr, dst, std::move(s)); }
  void push(bool t, const void** dt, const float** df, std::vector<Src> s) {
    Item it;
    it.t = t;
    it.dst_t = dt;
    it.dst_f = df;
    for (const Src& x : s) it.n += x.n;
    it.srcs = std::move(s);
    items.push_back(std::move(it));
  }
  size_t layout() {
    size_t off = 0;
    for (Item& it : items) {
      off = (off + kAlign - 1) / kAlign * kAlign;
      it.offset = off;
      off += it.n * (it.t ? 2 : 4);
    }
    return off;
  }
};

// Declares every device tensor (validating every source on the way).
void plan_weights(Planner& P, const ModelConfig& c, DeviceWeights* w, const FoldedHead& head) {
  const int64_t W = c.v_width, Pp = c.v_patch, g = c.v_image / c.v_patch, N = g * g + 1, M = c.v_mlp;
  const std::string pv = "blip.visual_encoder.";
  P.add_t(&w->patch_w, {P.src(pv + "patch_embed.proj.weight", {W, 3, Pp, Pp})});
  P.add_f(&w->patch_b, {P.src(pv + "patch_embed.proj.bias", {W})});
  P.add_f(&w->cls, {P.src(pv + "cls_token", {1, 1, W})});
  P.add_f(&w->vpos, {P.src(pv + "pos_embed", {1, N, W})});
  w->blocks.resize(c.v_layers);
  for (int i = 0; i < c.v_layers; i++) {
    const std::string b = pv + "blocks." + std::to_string(i) + ".";
    DeviceWeights::VitBlock& k = w->blocks[i];
    P.add_f(&k.ln1_g, {P.src(b + "norm1.weight", {W})});
    P.add_f(&k.ln1_b, {P.src(b + "norm1.bias", {W})});
    P.add_t(&k.qkv_w, {P.src(b + "attn.qkv.weight", {3 * W, W})});
    P.add_f(&k.qkv_b, {P.src(b + "attn.qkv.bias", {3 * W})});
    P.add_t(&k.qkv_bt, {P.src(b + "attn.qkv.bias", {3 * W})});
    P.add_t(&k.proj_w, {P.src(b + "attn.proj.weight", {W, W})});
    P.add_f(&k.proj_b, {P.src(b + "attn.proj.bias", {W})});
    P.add_f(&k.ln2_g, {P.src(b + "norm2.weight", {W})});
    P.add_f(&k.ln2_b, {P.src(b + "norm2.bias", {W})});
    P.add_t(&k.fc1_w, {P.src(b + "mlp.fc1.weight", {M, W})});
    P.add_f(&k.fc1_b, {P.src(b + "mlp.fc1.bias", {M})});
    P.add_t(&k.fc1_bt, {P.src(b + "mlp.fc1.bias", {M})});
    P.add_t(&k.fc2_w, {P.src(b + "mlp.fc2.weight", {W, M})});
    P.add_f(&k.fc2_b, {P.src(b + "mlp.fc2.bias", {W})});
  }
  P.add_f(&w->vnorm_g, {P.src(pv + "norm.weight", {W})});
  P.add_f(&w->vnorm_b, {P.src(pv + "norm.bias", {W})});

  const int64_t H = c.t_hidden, I = c.t_inter, E = c.v_width;
  const std::string pt = "blip.text_encoder.";
  P.add_t(&w->word, {P.src(pt + "embeddings.word_embeddings.weight", {c.t_vocab, H})});
  P.add_f(&w->tpos, {P.src(pt + "embeddings.position_embeddings.weight", {c.t_max_pos, H})});
  P.add_f(&w->emb_g, {P.src(pt + "embeddings.LayerNorm.weight", {H})});
  P.add_f(&w->emb_b, {P.src(pt + "embeddings.LayerNorm.bias", {H})});
  w->layers.resize(c.t_layers);
  std::vector<Src> xkv_w, xkv_b;
  for (int i = 0; i < c.t_layers; i++) {
    const std::string b = pt + "encoder.layer." + std::to_string(i) + ".";
    DeviceWeights::BertLayer& L = w->layers[i];
    const std::string sa = b + "attention.self.", ca = b + "crossattention.self.";
    P.add_t(&L.qkv_w, {P.src(sa + "query.weight", {H, H}), P.src(sa + "key.weight", {H, H}), P.src(sa + "value.weight", {H, H})});
    std::vector<Src> qkvb = {P.src(sa + "query.bias", {H}), P.src(sa + "key.bias", {H}), P.src(sa + "value.bias", {H})};
    P.add_f(&L.qkv_b, qkvb);
    P.add_t(&L.qkv_bt, qkvb);
    P.add_t(&L.ao_w, {P.src(b + "attention.output.dense.weight", {H, H})});
    P.add_f(&L.ao_b, {P.src(b + "attention.output.dense.bias", {H})});
    P.add_f(&L.ln1_g, {P.src(b + "attention.output.LayerNorm.weight", {H})});
    P.add_f(&L.ln1_b, {P.src(b + "attention.output.LayerNorm.bias", {H})});
    P.add_t(&L.cq_w, {P.src(ca + "query.weight", {H, H})});
    P.add_f(&L.cq_b, {P.src(ca + "query.bias", {H})});
    P.add_t(&L.cq_bt, {P.src(ca + "query.bias", {H})});
    xkv_w.push_back(P.src(ca + "key.weight", {H, E}));
    xkv_w.push_back(P.src(ca + "value.weight", {H, E}));
    xkv_b.push_back(P.src(ca + "key.bias", {H}));
    xkv_b.push_back(P.src(ca + "value.bias", {H}));
    P.add_t(&L.co_w, {P.src(b + "crossattention.output.dense.weight", {H, H})});
    P.add_f(&L.co_b, {P.src(b + "crossattention.output.dense.bias", {H})});
    P.add_f(&L.ln2_g, {P.src(b + "crossattention.output.LayerNorm.weight", {H})});
    P.add_f(&L.ln2_b, {P.src(b + "crossattention.output.LayerNorm.bias", {H})});
    P.add_t(&L.in_w, {P.src(b + "intermediate.dense.weight", {I, H})});
    P.add_f(&L.in_b, {P.src(b + "intermediate.dense.bias", {I})});
    P.add_t(&L.out_w, {P.src(b + "output.dense.weight", {H, I})});
    P.add_f(&L.out_b, {P.src(b + "output.dense.bias", {H})});
    P.add_f(&L.ln3_g, {P.src(b + "output.LayerNorm.weight", {H})});
    P.add_f(&L.ln3_b, {P.src(b + "output.LayerNorm.bias", {H})});
  }
  P.add_t(&w->xkv_w, xkv_w);
  P.add_f(&w->xkv_b, xkv_b);
  P.add_t(&w->xkv_bt, xkv_b);
  P.add_f(&w->head_w, {{head.w.data(), head.w.size()}});
  w->head_b = head.b;
}

}  // namespace

size_t validate_model(const SafetensorsFile& f, const ModelConfig& c) {
  const FoldedHead head = fold_head(f, c);
  Planner P{f, {}};
  DeviceWeights dummy;
  plan_weights(P, c, &dummy, head);
  return P.layout();
}

DeviceWeights::~DeviceWeights() {
  if (arena) cudaFree(arena);
}

std::unique_ptr<DeviceWeights> load_weights(const std::string& dir, bool fp16, ModelConfig* cfg) {
  const ModelConfig c = read_model_config(dir);
  SafetensorsFile f(dir + "/model.safetensors");
  const FoldedHead head = fold_head(f, c);
  auto w = std::make_unique<DeviceWeights>();
  w->fp16 = fp16;
  Planner P{f, {}};
  plan_weights(P, c, w.get(), head);
  const size_t total = P.layout();
  IR_CHECK(cudaMalloc(&w->arena, total));
  w->bytes = total;
  uint8_t* base = static_cast<uint8_t*>(w->arena);

  // fp32 staging for the T conversions (device), in chunks of at most 32 MiB — no larger
  // than the largest tensor converted, so a small model does not need 32 MiB spare.
  constexpr size_t kChunk = 8u << 20;  // floats (32 MiB)
  size_t chunk = 1;
  for (const Item& it : P.items)
    if (it.t)
      for (const Src& s : it.srcs) chunk = std::max(chunk, std::min(kChunk, s.n));
  float* staging = nullptr;
  IR_CHECK(cudaMalloc(&staging, chunk * sizeof(float)));
  try {
    for (Item& it : P.items) {
      uint8_t* dst = base + it.offset;
      if (it.t) *it.dst_t = dst;
      else *it.dst_f = reinterpret_cast<const float*>(dst);
      size_t at = 0;  // elements written
      for (const Src& s : it.srcs) {
        if (!it.t) {
          IR_CHECK(cudaMemcpy(dst + at * 4, s.data, s.n * 4, cudaMemcpyHostToDevice));
        } else {
          for (size_t k = 0; k < s.n; k += chunk) {
            const size_t m = std::min(chunk, s.n - k);
            IR_CHECK(cudaMemcpy(staging, s.data + k, m * 4, cudaMemcpyHostToDevice));
            if (fp16) IR_CHECK(cuda::convert_f32<__half>(staging, reinterpret_cast<__half*>(dst) + at + k, static_cast<long>(m), nullptr));
            else IR_CHECK(cuda::convert_f32<__nv_bfloat16>(staging, reinterpret_cast<__nv_bfloat16*>(dst) + at + k, static_cast<long>(m), nullptr));
          }
        }
        at += s.n;
      }
    }
    IR_CHECK(cudaDeviceSynchronize());
  } catch (...) {
    cudaFree(staging);
    throw;
  }
  IR_CHECK(cudaFree(staging));
  if (cfg) *cfg = c;
  return w;
}

}  // namespace ir
