// sim_runtime.cc — the kernel simulator's scheduler and the runtime calls the kernels'
// launchers make (cudaFuncSetAttribute, cudaDeviceGetAttribute, cudaGetDevice). See
// cuda_sim.h for the model and what is checked.
//
// A block's threads are fibers on stacks reused across blocks (x86-64: a six-register
// switch in assembly, no signal-mask syscall per switch; elsewhere ucontext). The scheduler
// takes the warps one at a time in the IR_SIM_ORDER order and runs each as far as it can:
// its lanes (in that order too) each run until they wait at a collective or end; when every
// live lane waits at the same warp collective the warp is released and goes on. Then the
// next warp. When no warp can move: if every live thread waits at __syncthreads the block
// barrier is released; if every thread ended, the block is done; anything else is a
// divergence (a deadlock on the hardware) and a fault.
// Under AddressSanitizer the fiber switches are announced (__sanitizer_*_switch_fiber).
#include "cuda_sim.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define IR_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IR_SIM_ASAN 1
#endif
#endif
#ifdef IR_SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

// The device-loss hook of the runtime stand-in (tests/emu/cuda_runtime_emu.cc).
extern "C" void ir_emu_device_fault(cudaError_t err);
extern "C" void ir_emu_set_last_error(cudaError_t err);
extern "C" int ir_emu_capturing(cudaStream_t s);
extern "C" int ir_emu_capture_record(cudaStream_t s, void (*run)(void*), void* ctx, void (*free_ctx)(void*));

namespace ir_sim {
namespace {

// ---- fibers -----------------------------------------------------------------------------
#if defined(__x86_64__)
// ir_sim_switch(from_sp, to_sp): push the SysV callee-saved registers, save rsp in
// *from_sp, load to_sp, pop and return there.
extern "C" void ir_sim_switch(void** from_sp, void* to_sp);
asm(R"(
  .text
  .p2align 4
  .type ir_sim_switch,@function
ir_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size ir_sim_switch,.-ir_sim_switch
)");

struct Ctx {
  void* sp = nullptr;
};
// A fresh fiber "returns" into entry with rsp ≡ 8 (mod 16), as after a call.
void ctx_init(Ctx& c, void* stack, size_t size, void (*entry)()) {
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~static_cast<uintptr_t>(15);
  auto* p = reinterpret_cast<void**>(top);
  *--p = nullptr;                             // entry's (never used) return address
  *--p = reinterpret_cast<void*>(entry);      // ir_sim_switch returns here
  for (int i = 0; i < 6; ++i) *--p = nullptr;  // rbp rbx r12 r13 r14 r15
  c.sp = p;
}
inline void ctx_switch(Ctx& from, Ctx& to) { ir_sim_switch(&from.sp, to.sp); }
#else
struct Ctx {
  ucontext_t uc;
};
void ctx_init(Ctx& c, void* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
inline void ctx_switch(Ctx& from, Ctx& to) { swapcontext(&from.uc, &to.uc); }
#endif

constexpr size_t kStack = 64 * 1024;  // kernels keep little on the stack (a WMMA fragment here is 1 KB)
constexpr size_t kDefaultSmem = 48 * 1024;

enum class St { Ready, BlockBarrier, WarpBarrier, Done };

struct Fiber {
  Ctx ctx;
  void* stack = nullptr;
  St st = St::Ready;
  const char* what = nullptr;  // the warp collective waited at
  unsigned mask = 0;
  ThreadState ts{};
};

struct MmaEntry {
  uint64_t seq = ~0ull;
  float in[3][256];
  float out[256];
};
constexpr size_t kMmaRing = 256;  // > the mma_sync calls a lane makes between two warp barriers

struct Block {
  std::vector<std::vector<MmaEntry>> memo;  // per warp, allocated on the first mma_sync
  std::vector<Fiber> fibers;
  Ctx sched;
  const std::function<void()>* body = nullptr;
  unsigned char* smem = nullptr;  // dynamic shared memory: 1024-byte aligned, exact size
  size_t smem_bytes = 0;
  std::vector<uint64_t> slots;  // [2][nthreads]: shuffle exchange, by barrier parity
  std::vector<unsigned> warp_gen;
  int cur = -1;
  const char* kernel = "";
  bool faulted = false;
  cudaError_t fault_err = cudaSuccess;
#ifdef IR_SIM_ASAN
  void* fake_stack = nullptr;
  const void* sched_bottom = nullptr;  // the scheduler's stack, for switches back to it
  size_t sched_size = 0;
#endif
};

thread_local Block* g_block = nullptr;
thread_local ThreadState g_idle{};  // current() outside a kernel

std::mutex g_attr_mu;
std::map<const void*, int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : dflt;
}

int smem_optin() {
  static const int v = env_int("IR_SIM_SMEM_OPTIN", 232448);
  return v;
}

enum class Order { Forward, Reverse, Shuffle };
Order order() {
  static const Order o = [] {
    const char* v = std::getenv("IR_SIM_ORDER");
    const std::string s = v ? v : "";
    if (s == "reverse") return Order::Reverse;
    if (s == "shuffle") return Order::Shuffle;
    return Order::Forward;
  }();
  return o;
}

void switch_to_fiber(Block& b, Fiber& f) {
#ifdef IR_SIM_ASAN
  __sanitizer_start_switch_fiber(&b.fake_stack, f.stack, kStack);
#endif
  ctx_switch(b.sched, f.ctx);
#ifdef IR_SIM_ASAN
  __sanitizer_finish_switch_fiber(b.fake_stack, nullptr, nullptr);
#endif
}

// From a fiber back to the scheduler (the fiber resumes here when released).
void yield_to_scheduler(Block& b) {
  Fiber& f = b.fibers[static_cast<size_t>(b.cur)];
#ifdef IR_SIM_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, b.sched_bottom, b.sched_size);
  ctx_switch(f.ctx, b.sched);
  __sanitizer_finish_switch_fiber(fake, &b.sched_bottom, &b.sched_size);
#else
  ctx_switch(f.ctx, b.sched);
#endif
}

void fiber_main() {
  Block& b = *g_block;
#ifdef IR_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.sched_bottom, &b.sched_size);
#endif
  (*b.body)();
  b.fibers[static_cast<size_t>(b.cur)].st = St::Done;
#ifdef IR_SIM_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.sched_bottom, b.sched_size);  // this fiber ends
#endif
  Ctx dead;
  ctx_switch(dead, b.sched);  // never resumed
}

std::string where(const Block& b, const Fiber& f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s block (%u,%u,%u) thread (%u,%u,%u)", b.kernel, f.ts.bid.x, f.ts.bid.y, f.ts.bid.z, f.ts.tid.x, f.ts.tid.y,
                f.ts.tid.z);
  return buf;
}

// Stacks are kept between launches (per OS thread): mmap'd lazily-committed regions.
thread_local std::vector<void*> g_stacks;
void* stack_for(size_t i) {
  while (g_stacks.size() <= i) {
    void* p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    g_stacks.push_back(p);
  }
  return g_stacks[i];
}

// Runs one block to its end; false after a fault.
bool run_block(Block& b, std::mt19937& rng) {
  const size_t n = b.fibers.size();
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.st = St::Ready;
    f.stack = stack_for(i);
    if (!f.stack) {
      std::fprintf(stderr, "ir_sim: out of memory for fiber stacks\n");
      return false;
    }
    ctx_init(f.ctx, f.stack, kStack, fiber_main);
  }
  const unsigned nwarps = static_cast<unsigned>((n + 31) / 32);
  std::vector<unsigned> warps(nwarps);
  for (unsigned w = 0; w < nwarps; ++w) warps[w] = w;
  std::vector<size_t> lanes;
  // Warp w's collective, once none of its lanes can run: 1 released, 0 not complete, -1 fault.
  auto release_warp = [&](unsigned w) -> int {
    const size_t lo = w * 32u, hi = std::min(n, lo + 32u);
    bool any_warp = false, all_warp = true;
    const char* what = nullptr;
    unsigned mask = 0;
    for (size_t i = lo; i < hi; ++i) {
      const Fiber& f = b.fibers[i];
      if (f.st == St::Done) continue;
      if (f.st == St::WarpBarrier) {
        if (any_warp && (f.what != what || f.mask != mask)) {
          std::fprintf(stderr, "ir_sim: %s: divergent warp collectives (%s mask %08x vs %s mask %08x)\n", where(b, f).c_str(), f.what, f.mask,
                       what, mask);
          b.fault_err = cudaErrorLaunchFailure;
          return -1;
        }
        any_warp = true;
        what = f.what;
        mask = f.mask;
      }
    }
    if (!any_warp) return 0;
    // every lane named in the mask must be alive and waiting here
    for (size_t i = lo; i < hi; ++i) {
      const Fiber& f = b.fibers[i];
      if (!(mask & (1u << (i - lo)))) continue;
      if (f.st == St::Done) {
        std::fprintf(stderr, "ir_sim: %s block (%u,%u,%u) warp %u: %s (mask %08x) names lane %zu, which has exited\n", b.kernel, f.ts.bid.x,
                     f.ts.bid.y, f.ts.bid.z, w, what, mask, i - lo);
        b.fault_err = cudaErrorLaunchFailure;
        return -1;
      }
      if (f.st != St::WarpBarrier) all_warp = false;
    }
    if (!all_warp) return 0;
    for (size_t i = lo; i < hi; ++i)
      if (b.fibers[i].st == St::WarpBarrier) b.fibers[i].st = St::Ready;
    ++b.warp_gen[w];
    return 1;
  };
  // Warps run one at a time, each as far as it can go (through its own warp collectives)
  // before the next starts: the most skew between warps, so a read of data another warp
  // writes before a __syncthreads() that is missing sees the unwritten (0xFF) memory.
  for (;;) {
    if (order() == Order::Reverse) std::reverse(warps.begin(), warps.end());
    if (order() == Order::Shuffle) std::shuffle(warps.begin(), warps.end(), rng);
    for (const unsigned w : warps) {
      for (;;) {
        const size_t lo = w * 32u, hi = std::min(n, lo + 32u);
        lanes.clear();
        for (size_t i = lo; i < hi; ++i) lanes.push_back(i);
        if (order() == Order::Reverse) std::reverse(lanes.begin(), lanes.end());
        if (order() == Order::Shuffle) std::shuffle(lanes.begin(), lanes.end(), rng);
        for (const size_t i : lanes) {
          if (b.fibers[i].st != St::Ready) continue;
          b.cur = static_cast<int>(i);
          switch_to_fiber(b, b.fibers[i]);
          if (b.faulted) return false;
        }
        const int r = release_warp(w);
        if (r < 0) return false;
        if (r == 0) break;
      }
    }
    if (order() == Order::Reverse) std::reverse(warps.begin(), warps.end());
    bool all_done = true, all_at_block = true;
    for (const Fiber& f : b.fibers) {
      if (f.st != St::Done) all_done = false;
      if (f.st != St::BlockBarrier && f.st != St::Done) all_at_block = false;
    }
    if (all_done) return true;
    if (all_at_block) {
      for (const Fiber& f : b.fibers)
        if (f.st == St::Done) {
          std::fprintf(stderr, "ir_sim: %s: __syncthreads() after this thread exited (the whole block must reach it)\n", where(b, f).c_str());
          b.fault_err = cudaErrorLaunchFailure;
          return false;
        }
      for (Fiber& f : b.fibers) f.st = St::Ready;
      continue;
    }
    for (const Fiber& f : b.fibers)
      if (f.st == St::WarpBarrier || f.st == St::BlockBarrier) {
        std::fprintf(stderr, "ir_sim: %s: deadlock: waits at %s while other threads wait elsewhere\n", where(b, f).c_str(),
                     f.st == St::BlockBarrier ? "__syncthreads()" : f.what);
        break;
      }
    b.fault_err = cudaErrorLaunchFailure;
    return false;
  }
}

}  // namespace

ThreadState& current() { return g_block ? g_block->fibers[static_cast<size_t>(g_block->cur)].ts : g_idle; }

unsigned char* dynamic_smem() { return g_block ? g_block->smem : nullptr; }

void sync_block() {
  Block& b = *g_block;
  b.fibers[static_cast<size_t>(b.cur)].st = St::BlockBarrier;
  yield_to_scheduler(b);
}

void sync_warp(unsigned mask, const char* what) {
  Block& b = *g_block;
  Fiber& f = b.fibers[static_cast<size_t>(b.cur)];
  if (!(mask & (1u << f.ts.lane))) fault(cudaErrorLaunchFailure, "%s: the calling lane %u is not in mask %08x", what, f.ts.lane, mask);
  f.st = St::WarpBarrier;
  f.what = what;
  f.mask = mask;
  yield_to_scheduler(b);
}

uint64_t warp_exchange(unsigned mask, uint64_t mine, unsigned src_lane, const char* what) {
  Block& b = *g_block;
  const size_t me = static_cast<size_t>(b.cur);
  const unsigned warp = b.fibers[me].ts.warp;
  const size_t n = b.fibers.size();
  const unsigned parity = b.warp_gen[warp] & 1u;
  b.slots[parity * n + me] = mine;
  if (!(mask & (1u << src_lane))) fault(cudaErrorLaunchFailure, "%s: source lane %u is not in mask %08x", what, src_lane, mask);
  sync_warp(mask, what);
  const size_t src = warp * 32u + src_lane;
  if (src >= n) fault(cudaErrorLaunchFailure, "%s: source lane %u does not exist", what, src_lane);
  return b.slots[parity * n + src];
}

void mma_16x16x16(float* d, const float* a, const float* b, const float* c) {
  Block& blk = *g_block;
  ThreadState& ts = blk.fibers[static_cast<size_t>(blk.cur)].ts;
  if (blk.memo.empty()) blk.memo.resize((blk.fibers.size() + 31) / 32);
  auto& ring = blk.memo[ts.warp];
  if (ring.empty()) ring.resize(kMmaRing);
  const uint64_t seq = ts.mma_seq++;
  MmaEntry& e = ring[seq % kMmaRing];
  if (e.seq == seq) {
    if (std::memcmp(e.in[0], a, sizeof e.in[0]) != 0 || std::memcmp(e.in[1], b, sizeof e.in[1]) != 0 ||
        std::memcmp(e.in[2], c, sizeof e.in[2]) != 0)
      fault(cudaErrorLaunchFailure,
            "wmma::mma_sync call %llu: this lane's operands differ from another lane's of the same warp (a fragment loaded "
            "before other lanes wrote the memory — a missing __syncwarp() — or divergent WMMA calls)",
            static_cast<unsigned long long>(seq));
    std::memcpy(d, e.out, sizeof e.out);
    return;
  }
  float out[256];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float s = c[m * 16 + n];
      for (int k = 0; k < 16; ++k) s += a[m * 16 + k] * b[k * 16 + n];
      out[m * 16 + n] = s;
    }
  e.seq = seq;
  std::memcpy(e.in[0], a, sizeof e.in[0]);
  std::memcpy(e.in[1], b, sizeof e.in[1]);
  std::memcpy(e.in[2], c, sizeof e.in[2]);
  std::memcpy(e.out, out, sizeof out);
  std::memcpy(d, out, sizeof out);
}

void fault(cudaError_t err, const char* fmt, ...) {
  Block& b = *g_block;
  std::fprintf(stderr, "ir_sim: %s: ", where(b, b.fibers[static_cast<size_t>(b.cur)]).c_str());
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  b.faulted = true;
  b.fault_err = err;
#ifdef IR_SIM_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.sched_bottom, b.sched_size);
#endif
  Ctx dead;
  ctx_switch(dead, b.sched);  // abandon this fiber (kernels hold no resources); never resumed
  std::abort();
}

namespace {
cudaError_t execute_grid(const char* name, const Cfg& cfg, const std::function<void()>& body);

struct RecordedLaunch {
  std::string name;
  Cfg cfg;
  std::function<void()> body;
};
}  // namespace

cudaError_t run_grid(const char* name, const void* fn, const Cfg& cfg, const std::function<void()>& body) {
  const dim3 g = cfg.grid, bl = cfg.block;
  const unsigned long nthreads = static_cast<unsigned long>(bl.x) * bl.y * bl.z;
  int max_dyn = static_cast<int>(kDefaultSmem);
  {
    std::lock_guard<std::mutex> lk(g_attr_mu);
    const auto it = g_max_dyn_smem.find(fn);
    if (it != g_max_dyn_smem.end()) max_dyn = it->second;
  }
  cudaError_t cfg_err = cudaSuccess;
  if (nthreads == 0 || nthreads > 1024 || bl.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535)
    cfg_err = cudaErrorInvalidConfiguration;
  else if (cfg.smem > static_cast<size_t>(max_dyn))
    cfg_err = cudaErrorInvalidValue;  // "too many resources requested for launch" class
  if (cfg_err != cudaSuccess) {
    std::fprintf(stderr, "ir_sim: %s<<<(%u,%u,%u), (%u,%u,%u), %zu>>>: bad launch (%s; dynamic smem limit %d)\n", name, g.x, g.y, g.z, bl.x,
                 bl.y, bl.z, cfg.smem, cudaGetErrorName(cfg_err), max_dyn);
    ir_emu_set_last_error(cfg_err);
    return cfg_err;
  }
  if (!ir_emu_capturing(cfg.stream)) return execute_grid(name, cfg, body);
  const auto replay = [](void* c) {
    auto* r = static_cast<RecordedLaunch*>(c);
    execute_grid(r->name.c_str(), r->cfg, r->body);
  };
  ir_emu_capture_record(cfg.stream, replay, new RecordedLaunch{name, cfg, body}, [](void* c) { delete static_cast<RecordedLaunch*>(c); });
  return cudaSuccess;
}

namespace {
cudaError_t execute_grid(const char* name, const Cfg& cfg, const std::function<void()>& body) {
  const dim3 g = cfg.grid, bl = cfg.block;
  const unsigned long nthreads = static_cast<unsigned long>(bl.x) * bl.y * bl.z;
  Block b;
  b.kernel = name;
  b.body = &body;
  b.fibers.resize(nthreads);
  b.slots.assign(2 * nthreads, 0);
  b.warp_gen.assign((nthreads + 31) / 32, 0);
  std::mt19937 rng(static_cast<unsigned>(env_int("IR_SIM_SEED", 1)));
  // Like the hardware's shared window: the dynamic array starts well aligned (the kernels
  // declare __align__(128)); its exact size lets AddressSanitizer see overruns.
  void* smem = nullptr;
  if (posix_memalign(&smem, 1024, cfg.smem ? cfg.smem : 1) != 0) {
    ir_emu_set_last_error(cudaErrorMemoryAllocation);
    return cudaErrorMemoryAllocation;
  }
  b.smem = static_cast<unsigned char*>(smem);
  b.smem_bytes = cfg.smem;
  Block* const saved = g_block;
  g_block = &b;
  bool ok = true;
  for (unsigned z = 0; z < g.z && ok; ++z)
    for (unsigned y = 0; y < g.y && ok; ++y)
      for (unsigned x = 0; x < g.x && ok; ++x) {
        std::memset(b.smem, 0xFF, cfg.smem);  // NaN as fp32/bf16/fp16: reads before writes show
        unsigned long t = 0;
        for (unsigned tz = 0; tz < bl.z; ++tz)
          for (unsigned ty = 0; ty < bl.y; ++ty)
            for (unsigned tx = 0; tx < bl.x; ++tx, ++t) {
              ThreadState& ts = b.fibers[t].ts;
              ts.tid = make_uint3(tx, ty, tz);
              ts.bid = make_uint3(x, y, z);
              ts.bdim = bl;
              ts.gdim = g;
              ts.lane = static_cast<unsigned>(t % 32);
              ts.warp = static_cast<unsigned>(t / 32);
              ts.mma_seq = 0;
            }
        for (auto& ring : b.memo)
          for (MmaEntry& e : ring) e.seq = ~0ull;
        std::fill(b.warp_gen.begin(), b.warp_gen.end(), 0u);
        ok = run_block(b, rng);
      }
  g_block = saved;
  std::free(smem);
  if (!ok) {
    const cudaError_t e = b.fault_err == cudaSuccess ? cudaErrorLaunchFailure : b.fault_err;
    std::fprintf(stderr, "ir_sim: %s stopped: %s (the device is lost, as after a kernel fault)\n", name, cudaGetErrorName(e));
    ir_emu_device_fault(e);
    return e;
  }
  return cudaSuccess;
}
}  // namespace

}  // namespace ir_sim

// ---- the runtime calls of the kernels' launchers -------------------------------------------
extern "C" {

cudaError_t CUDARTAPI cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaDeviceGetAttribute(int* v, enum cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = ir_sim::smem_optin(); return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = 48 * 1024; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *v = 132; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t CUDARTAPI cudaFuncSetAttribute(const void* fn, enum cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > ir_sim::smem_optin()) return cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lk(ir_sim::g_attr_mu);
  ir_sim::g_max_dyn_smem[fn] = value;
  return cudaSuccess;
}

}  // extern "C"
