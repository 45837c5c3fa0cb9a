// engine_check — the CUDA engine's standalone check for GPU machines without Node:
// parity against fp32 references, then a benchmark. Prints a short markdown table LAST.
//
//   engine_check --model <dir> [--refs <dir | refs.json | refs.bin>] [--bench] [--batches 1,8,32,128,256]
//                [--seconds 3] [--peak-tflops 989] [--fp16] [--no-graphs] [--streams 2] [--fc1-t] [--bar 0.02]
//                [--pairs N]   (parity on the first N reference pairs only: slow CPU emulation)
//   (--fc1-t: sets IMAGEREWARD_FC1_T=1, the ViT fc1 → T + in-place GELU path of engine.cu)
//   engine_check --model <dir> --check-model      (host only: parse + validate, no GPU)
//
// References (written by bench/gpu-refs.ts): a folder with refs.json + refs.bin.
//   refs.json  {pairs, pixels, input_ids, attention_mask, rewards, raw, image_embeds0: {dtype, shape, offset}, …}
//              (dtype "F32" or "I32"; offset = byte offset into refs.bin)
//   refs.bin   the arrays, little-endian, row-major, at those offsets
//   pixels F32 [P,3,S,S], input_ids / attention_mask I32 [P,L], rewards / raw F32 [P],
//   image_embeds0 F32 [1,N,W] (pair 0's image embeddings; optional)
//
// Parity bars (the issue's): |reward − fp32 ref| ≤ 0.02 (--bar) for every pair; the ranking
// is identical wherever two refs differ by > 0.05. Pair 0 is also run alone (batch 1). With
// --streams N > 1, N threads then score all pairs at once, each in its own chunk size
// (all pairs, half of them, …: several buckets and slots at a time), and every thread's
// rewards must pass the same bar.
//
// Benchmark: per batch size, warm-up (the first call captures the bucket's CUDA graph),
// then `--streams` threads call forward() back to back for --seconds; pairs/s = pairs /
// wall time (host staging and copies included: what a caller sees). Batch-1 latency is
// the median of single forward() calls. MFU = pairs/s × 137.8 GFLOP / peak. Then the
// vision half and the text half timed alone at the largest batch (where the time goes).
//
// Exit: 0 all parity checks passed (or no refs), 1 a check failed, 2 usage / engine error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cuda/engine.h"
#include "cuda/weights.h"

namespace {

constexpr double kGflopPerPair = 137.8;

struct Args {
  std::string model, refs;
  bool bench = false, check_model = false, fp16 = false, graphs = true;
  std::vector<int> batches = {1, 8, 32, 128, 256};
  double seconds = 3, peak_tflops = 989, bar = 0.02;
  int streams = 2, pairs = 0;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "engine_check: %s\nusage: engine_check --model <dir> [--refs <dir|refs.json>] [--bench] [--batches 1,8,32] [--seconds 3] "
                       "[--peak-tflops 989] [--fp16] [--no-graphs] [--streams 2] [--fc1-t] [--bar 0.02] [--pairs N] | --model <dir> --check-model\n", msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + k).c_str());
      return argv[++i];
    };
    if (k == "--model") a.model = val();
    else if (k == "--refs") a.refs = val();
    else if (k == "--bench") a.bench = true;
    else if (k == "--check-model") a.check_model = true;
    else if (k == "--fp16") a.fp16 = true;
    else if (k == "--no-graphs") a.graphs = false;
    else if (k == "--fc1-t") setenv("IMAGEREWARD_FC1_T", "1", 1);
    else if (k == "--seconds") a.seconds = std::atof(val().c_str());
    else if (k == "--peak-tflops") a.peak_tflops = std::atof(val().c_str());
    else if (k == "--bar") a.bar = std::atof(val().c_str());
    else if (k == "--pairs") a.pairs = std::atoi(val().c_str());
    else if (k == "--streams") a.streams = std::atoi(val().c_str());
    else if (k == "--batches") {
      a.batches.clear();
      std::stringstream ss(val());
      std::string t;
      while (std::getline(ss, t, ','))
        if (!t.empty()) a.batches.push_back(std::atoi(t.c_str()));
    } else usage(("unknown argument " + k).c_str());
  }
  if (a.model.empty()) usage("--model is required");
  return a;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Refs {
  int pairs = 0, L = 0, S = 0;
  std::vector<float> pixels, rewards, raw, embeds0;
  std::vector<int32_t> ids, mask;
  std::vector<int64_t> embeds0_shape;
};

template <typename V>
void load_array(const ir::Json& root, const std::string& bin, const char* key, const char* dtype, V* out, std::vector<int64_t>* shape, bool optional) {
  const ir::Json* e = root.get(key);
  if (!e) {
    if (optional) return;
    throw std::runtime_error(std::string("refs.json lacks ") + key);
  }
  const ir::Json* dt = e->get("dtype");
  const ir::Json* sh = e->get("shape");
  const ir::Json* off = e->get("offset");
  if (!dt || dt->str != dtype || !sh || !off) throw std::runtime_error(std::string("refs.json: bad entry ") + key);
  size_t n = 1;
  shape->clear();
  for (const ir::Json& d : sh->arr) {
    shape->push_back(static_cast<int64_t>(d.num));
    n *= static_cast<size_t>(d.num);
  }
  const size_t o = static_cast<size_t>(off->num);
  if (o + n * 4 > bin.size()) throw std::runtime_error(std::string("refs.bin too short for ") + key);
  out->resize(n);
  std::memcpy(out->data(), bin.data() + o, n * 4);
}

Refs load_refs(const std::string& where) {
  auto ends = [&](const char* suf) { const size_t n = std::strlen(suf); return where.size() >= n && where.compare(where.size() - n, n, suf) == 0; };
  std::string json_path = where, bin_path;
  if (ends(".bin")) json_path = where.substr(0, where.size() - 4) + ".json";
  else if (!ends(".json")) json_path = where + "/refs.json";
  bin_path = json_path.substr(0, json_path.size() - 5) + ".bin";
  const std::string text = read_all(json_path);
  const std::string bin = read_all(bin_path);
  const ir::Json root = ir::json_parse(text.data(), text.size(), json_path);
  Refs r;
  std::vector<int64_t> shape;
  load_array(root, bin, "pixels", "F32", &r.pixels, &shape, false);
  if (shape.size() != 4) throw std::runtime_error("refs: pixels must be [P,3,S,S]");
  r.pairs = static_cast<int>(shape[0]);
  r.S = static_cast<int>(shape[2]);
  load_array(root, bin, "input_ids", "I32", &r.ids, &shape, false);
  r.L = static_cast<int>(shape[1]);
  load_array(root, bin, "attention_mask", "I32", &r.mask, &shape, false);
  load_array(root, bin, "rewards", "F32", &r.rewards, &shape, false);
  load_array(root, bin, "raw", "F32", &r.raw, &shape, true);
  load_array(root, bin, "image_embeds0", "F32", &r.embeds0, &r.embeds0_shape, true);
  return r;
}

bool parity(ir::Engine& e, const Refs& r, int max_batch, int threads, double bar, std::vector<std::string>* rows) {
  const ir::ModelConfig& c = e.config();
  if (r.S != c.v_image || r.L != c.t_len) throw std::runtime_error("refs do not match the model's image size / prompt length");
  const size_t per = size_t(3) * r.S * r.S;
  std::vector<float> got(r.pairs), raw(r.pairs);
  for (int at = 0; at < r.pairs; at += max_batch) {
    const int B = std::min(max_batch, r.pairs - at);
    e.forward(r.pixels.data() + per * at, r.ids.data() + size_t(r.L) * at, r.mask.data() + size_t(r.L) * at, B, got.data() + at, raw.data() + at);
  }
  bool ok = true;
  double worst = 0;
  std::printf("\n## parity (%d pairs, bar |reward - ref| <= %g)\n", r.pairs, bar);
  for (int i = 0; i < r.pairs; i++) {
    const double d = std::fabs(double(got[i]) - r.rewards[i]);
    worst = std::max(worst, std::isfinite(d) ? d : 1e30);
    const bool pass = d <= bar && std::isfinite(got[i]);
    ok &= pass;
    std::printf("pair %2d  ref %+.6f  engine %+.6f  |d| %.2e  %s\n", i, r.rewards[i], got[i], d, pass ? "PASS" : "FAIL");
  }
  int order_checked = 0, order_bad = 0;
  for (int i = 0; i < r.pairs; i++)
    for (int j = i + 1; j < r.pairs; j++) {
      const double dr = double(r.rewards[i]) - r.rewards[j];
      if (std::fabs(dr) <= 0.05) continue;
      order_checked++;
      const double de = double(got[i]) - got[j];
      if ((dr > 0) != (de > 0)) {
        order_bad++;
        std::printf("ranking differs: pairs %d, %d (ref %+.4f vs %+.4f, engine %+.4f vs %+.4f)\n", i, j, r.rewards[i], r.rewards[j], got[i], got[j]);
      }
    }
  std::printf("ranking: %d ordered pairs checked, %d differ: %s\n", order_checked, order_bad, order_bad ? "FAIL" : "PASS");
  ok &= order_bad == 0;

  float one = 0, one_raw = 0;
  e.forward(r.pixels.data(), r.ids.data(), r.mask.data(), 1, &one, &one_raw);
  const double d1 = std::fabs(double(one) - r.rewards[0]);
  const bool pass1 = d1 <= bar;
  ok &= pass1;
  std::printf("batch-1 pair 0: engine %+.6f |d| %.2e (batched %+.6f) %s\n", one, d1, got[0], pass1 ? "PASS" : "FAIL");

  double emb_max = -1, emb_mean = 0;
  if (!r.embeds0.empty()) {
    const size_t n = size_t(c.v_width) * ((c.v_image / c.v_patch) * (c.v_image / c.v_patch) + 1);
    if (r.embeds0.size() == n) {
      std::vector<float> emb(n);
      e.encode_images(r.pixels.data(), 1, emb.data());
      emb_max = 0;
      for (size_t k = 0; k < n; k++) {
        const double d = std::fabs(double(emb[k]) - r.embeds0[k]);
        emb_max = std::max(emb_max, std::isfinite(d) ? d : 1e30);
        emb_mean += d;
      }
      emb_mean /= double(n);
      std::printf("image_embeds pair 0: max |d| %.3e, mean |d| %.3e (informational)\n", emb_max, emb_mean);
    }
  }
  // Several threads at once, each chunking the pairs differently (buckets and slots in parallel).
  double conc_worst = -1;
  if (threads > 1) {
    std::vector<std::vector<float>> res(threads, std::vector<float>(r.pairs)), res_raw(threads, std::vector<float>(r.pairs));
    std::vector<std::string> errors(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
      pool.emplace_back([&, t] {
        try {
          const int chunk = std::max(1, std::min(max_batch, r.pairs) >> t);
          for (int at = 0; at < r.pairs; at += chunk) {
            const int B = std::min(chunk, r.pairs - at);
            e.forward(r.pixels.data() + per * at, r.ids.data() + size_t(r.L) * at, r.mask.data() + size_t(r.L) * at, B, res[t].data() + at, res_raw[t].data() + at);
          }
        } catch (const std::exception& ex) {
          errors[t] = ex.what();
        }
      });
    for (auto& th : pool) th.join();
    conc_worst = 0;
    for (int t = 0; t < threads; t++) {
      if (!errors[t].empty()) throw std::runtime_error("concurrent parity, thread " + std::to_string(t) + ": " + errors[t]);
      for (int i = 0; i < r.pairs; i++) {
        const double d = std::fabs(double(res[t][i]) - r.rewards[i]);
        conc_worst = std::max(conc_worst, std::isfinite(d) ? d : 1e30);
      }
    }
    const bool passc = conc_worst <= bar;
    ok &= passc;
    std::printf("concurrent: %d threads (chunks %d..%d), max |d| %.2e %s\n", threads, std::max(1, std::min(max_batch, r.pairs) >> (threads - 1)),
                std::min(max_batch, r.pairs), conc_worst,
                passc ? "PASS" : "FAIL");
  }

  char buf[256];
  std::snprintf(buf, sizeof buf, "| parity: max abs(reward - fp32 ref), %d pairs (bar %g) | %.2e %s |", r.pairs, bar, worst, worst <= bar ? "PASS" : "FAIL");
  rows->push_back(buf);
  std::snprintf(buf, sizeof buf, "| ranking where refs differ > 0.05 (%d pairs) | %s |", order_checked, order_bad ? "FAIL" : "PASS");
  rows->push_back(buf);
  std::snprintf(buf, sizeof buf, "| batch-1 vs ref, pair 0 | %.2e %s |", d1, pass1 ? "PASS" : "FAIL");
  rows->push_back(buf);
  if (conc_worst >= 0) {
    std::snprintf(buf, sizeof buf, "| %d threads at once vs ref, max abs diff | %.2e %s |", threads, conc_worst, conc_worst <= bar ? "PASS" : "FAIL");
    rows->push_back(buf);
  }
  if (emb_max >= 0) {
    std::snprintf(buf, sizeof buf, "| image_embeds pair 0: max / mean abs diff | %.2e / %.2e |", emb_max, emb_mean);
    rows->push_back(buf);
  }
  return ok;
}

void bench(ir::Engine& e, const Args& a, const Refs* r, int max_batch, std::vector<std::string>* rows) {
  const ir::ModelConfig& c = e.config();
  const int S = c.v_image, L = c.t_len;
  const size_t per = size_t(3) * S * S;
  const int Bmax = std::min(max_batch, *std::max_element(a.batches.begin(), a.batches.end()));
  std::vector<float> pix(per * Bmax);
  std::vector<int32_t> ids(size_t(L) * Bmax), mask(size_t(L) * Bmax);
  for (int b = 0; b < Bmax; b++) {  // tile the reference pairs (or a fixed pattern)
    if (r && r->pairs > 0) {
      const int k = b % r->pairs;
      std::memcpy(pix.data() + per * b, r->pixels.data() + per * k, per * 4);
      std::memcpy(ids.data() + size_t(L) * b, r->ids.data() + size_t(L) * k, size_t(L) * 4);
      std::memcpy(mask.data() + size_t(L) * b, r->mask.data() + size_t(L) * k, size_t(L) * 4);
    } else {
      for (size_t k = 0; k < per; k++) pix[per * b + k] = std::sin(0.001f * float(k + b));
      for (int t = 0; t < L; t++) {
        ids[size_t(L) * b + t] = t < 10 ? (t * 37 + b) % c.t_vocab : 0;
        mask[size_t(L) * b + t] = t < 10;
      }
    }
  }
  const double peak = a.peak_tflops * 1e12;
  const int threads = std::max(1, a.streams);
  std::printf("\n## benchmark (%d thread(s), %.1f s per batch size, CUDA graphs %s)\n", threads, a.seconds, a.graphs ? "on" : "off");
  rows->push_back("| batch | pairs/s | ms / batch | MFU |");
  rows->push_back("| --- | --- | --- | --- |");
  for (int B : a.batches) {
    if (B < 1 || B > max_batch) continue;
    std::vector<float> rew(size_t(B) * threads), raw(size_t(B) * threads);
    for (int w = 0; w < 3; w++) e.forward(pix.data(), ids.data(), mask.data(), B, rew.data(), raw.data());  // warm-up + graph capture
    std::vector<long> calls(threads, 0);
    const auto t0 = std::chrono::steady_clock::now();
    const auto until = t0 + std::chrono::duration<double>(a.seconds);
    std::vector<std::thread> pool;
    std::vector<std::string> errors(threads);
    for (int t = 0; t < threads; t++)
      pool.emplace_back([&, t] {
        try {
          while (std::chrono::steady_clock::now() < until) {
            e.forward(pix.data(), ids.data(), mask.data(), B, rew.data() + size_t(B) * t, raw.data() + size_t(B) * t);
            calls[t]++;
          }
        } catch (const std::exception& ex) {
          errors[t] = ex.what();
        }
      });
    for (auto& th : pool) th.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const std::string& m : errors)
      if (!m.empty()) throw std::runtime_error("benchmark batch " + std::to_string(B) + ": " + m);
    long n = 0;
    for (long k : calls) n += k;
    const double pps = double(n) * B / secs;
    const double mfu = pps * kGflopPerPair * 1e9 / peak;
    std::printf("batch %3d: %ld calls in %.2f s: %.1f pairs/s, %.2f ms per batch (per thread), MFU %.1f%%\n", B, n, secs, pps, secs * 1e3 * threads / std::max(1L, n),
                100 * mfu);
    char buf[160];
    std::snprintf(buf, sizeof buf, "| %d | %.1f | %.2f | %.1f%% |", B, pps, secs * 1e3 * threads / std::max(1L, n), 100 * mfu);
    rows->push_back(buf);
  }
  // Where the time goes, at the largest benchmarked batch (one thread): the vision half
  // (encode_images, which also downloads the fp32 embeddings) and the text half
  // (score_text, which uploads them). Their sum exceeds forward by those transfers.
  {
    int Bs = 0;
    for (int B : a.batches)
      if (B <= max_batch) Bs = std::max(Bs, B);
    if (Bs > 0) {
      const size_t E = size_t(c.v_width) * ((c.v_image / c.v_patch) * (c.v_image / c.v_patch) + 1);
      std::vector<float> emb(E * Bs), rew(Bs), raw(Bs);
      auto per_call = [&](auto&& fn) {
        for (int w = 0; w < 2; w++) fn();
        const auto t0 = std::chrono::steady_clock::now();
        const auto until = t0 + std::chrono::duration<double>(std::min(a.seconds, 2.0));
        long n = 0;
        while (std::chrono::steady_clock::now() < until || n < 2) {
          fn();
          n++;
        }
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / double(n);
      };
      const double vis = per_call([&] { e.encode_images(pix.data(), Bs, emb.data()); });
      const double txt = per_call([&] { e.score_text(ids.data(), mask.data(), emb.data(), Bs, rew.data(), raw.data()); });
      std::printf("split at batch %d: vision %.2f ms, text %.2f ms per call (one thread)\n", Bs, vis, txt);
      char sb[200];
      std::snprintf(sb, sizeof sb, "| split at batch %d: vision / text ms per call | %.2f / %.2f | | |", Bs, vis, txt);
      rows->push_back(sb);
    }
  }
  // Batch-1 latency: median of single calls.
  std::vector<double> lat;
  float rew = 0, raw = 0;
  for (int i = 0; i < 3; i++) e.forward(pix.data(), ids.data(), mask.data(), 1, &rew, &raw);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::min(a.seconds, 2.0));
  while (std::chrono::steady_clock::now() < end || lat.size() < 5) {
    const auto t = std::chrono::steady_clock::now();
    e.forward(pix.data(), ids.data(), mask.data(), 1, &rew, &raw);
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  std::sort(lat.begin(), lat.end());
  std::printf("batch-1 latency: median %.2f ms, p90 %.2f ms (%zu calls)\n", lat[lat.size() / 2], lat[lat.size() * 9 / 10], lat.size());
  char buf[160];
  std::snprintf(buf, sizeof buf, "| batch-1 latency, median / p90 | %.2f / %.2f ms | | |", lat[lat.size() / 2], lat[lat.size() * 9 / 10]);
  rows->push_back(buf);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  std::vector<std::string> rows;
  try {
    if (a.check_model) {
      const ir::ModelConfig c = ir::read_model_config(a.model);
      ir::SafetensorsFile f(a.model + "/model.safetensors");
      const size_t bytes = ir::validate_model(f, c);
      const ir::FoldedHead h = ir::fold_head(f, c);
      std::printf("model %s: %zu tensors, all needed present (F32, shapes OK)\n", a.model.c_str(), f.tensor_count());
      std::printf("device weights: %.1f MiB (%s)\nfolded head: b = %.9g, w[0..2] = %.9g %.9g %.9g\n", bytes / 1048576.0, a.fp16 ? "fp16" : "bf16", h.b, h.w[0], h.w[1],
                  h.w[2]);
      return 0;
    }
    ir::EngineOptions o;
    o.model_dir = a.model;
    o.fp16 = a.fp16;
    o.cuda_graphs = a.graphs;
    o.streams = a.streams;
    o.max_batch = 256;
    for (int b : a.batches) o.max_batch = std::max(o.max_batch, std::min(b, 256));
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<ir::Engine> e = ir::Engine::load(o);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const ir::DeviceInfo d = e->device_info();
    const ir::BuildInfoCuda bi = ir::cuda_build_info();
    std::printf("device %d: %s (sm_%d%d), %.1f GiB total, %.1f GiB free; driver %d, runtime %d; cuBLASLt %s; build archs %s\n", d.device, d.name.c_str(), d.cc_major,
                d.cc_minor, d.total_memory / 1073741824.0, d.free_memory / 1073741824.0, d.driver_version, d.runtime_version, d.cublaslt_version.c_str(),
                bi.archs.c_str());
    std::printf("engine loaded in %.2f s; weights %.1f MiB on the device (%s)\n", load_s, d.weight_bytes / 1048576.0, a.fp16 ? "fp16" : "bf16");
    char buf[200];
    rows.push_back("| check | result |");
    rows.push_back("| --- | --- |");
    std::snprintf(buf, sizeof buf, "| engine: device / weights / load time | %s / %.0f MiB %s / %.1f s |", d.name.c_str(), d.weight_bytes / 1048576.0,
                  a.fp16 ? "fp16" : "bf16", load_s);
    rows.push_back(buf);
    bool ok = true;
    std::unique_ptr<Refs> refs;
    if (!a.refs.empty()) {
      refs = std::make_unique<Refs>(load_refs(a.refs));
      if (a.pairs > 0 && a.pairs < refs->pairs) refs->pairs = a.pairs;  // arrays stay; only the first N are used
      ok = parity(*e, *refs, o.max_batch, a.streams, a.bar, &rows);
    }
    if (a.bench) {
      rows.push_back("");
      bench(*e, a, refs.get(), o.max_batch, &rows);
    }
    {
      const ir::DeviceInfo d2 = e->device_info();
      std::printf("CUDA graphs: %d captured, %d failed%s\n", d2.graphs_captured, d2.graphs_failed, a.graphs ? "" : " (disabled)");
      std::snprintf(buf, sizeof buf, "| CUDA graphs captured / failed | %d / %d |", d2.graphs_captured, d2.graphs_failed);
      if (!a.bench) rows.push_back(buf);
      else rows.insert(rows.begin() + 3, buf);
      // 0 unless this cuBLASLt has no BIAS-epilogue algorithm for some GEMM (gemm.cuh)
      std::snprintf(buf, sizeof buf, "| GEMM plans with the bias seeded by add_bias (no BIAS epilogue) | %d |", d2.gemm_bias_seeded);
      if (!a.bench) rows.push_back(buf);
      else rows.insert(rows.begin() + 4, buf);
    }
    e->dispose();
    std::printf("\n");
    for (const std::string& r : rows) std::printf("%s\n", r.c_str());
    return ok ? 0 : 1;
  } catch (const ir::EngineError& err) {
    std::fprintf(stderr, "engine_check: %s: %s\n", ir::engine_error_code_name(err.code()), err.what());
    for (const std::string& r : rows) std::printf("%s\n", r.c_str());
    std::printf("| engine error | %s |\n", ir::engine_error_code_name(err.code()));
    return 2;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "engine_check: %s\n", err.what());
    return 2;
  }
}
