// cuda_runtime_emu.cc — the subset of the CUDA runtime API the engine calls, on the host,
// for the engine's CPU emulation (ir_engine_emu; see ops_emu.cc for why it exists).
//
// "Device" memory is host memory (256-byte aligned like cudaMalloc), every copy is a
// memcpy, streams are synchronous (work runs when enqueued, so synchronizing is a no-op),
// and there is exactly one "device". Stream capture is refused (cudaErrorNotSupported):
// the engine must fall back to eager execution, which is what this build exercises.
// In the kernel simulator's build (IR_CUDA_SIM_RUNTIME) capture works instead: while a
// stream captures (ThreadLocal mode), its copies, memsets, simulated kernel launches and
// emulated cuBLASLt calls are recorded with their arguments as they are then (as a real
// graph bakes them) and run at each cudaGraphLaunch; the calls a capturing thread may not
// make (cudaMalloc, cudaFree, cudaMemcpy, any synchronize) fail with
// cudaErrorStreamCaptureUnsupported and invalidate the capture, as on a GPU.
// IMAGEREWARD_EMU_MEMORY caps the "device" memory (bytes) so out-of-memory paths can be
// driven from a test: an allocation past the cap fails with cudaErrorMemoryAllocation.
// IMAGEREWARD_EMU_STICKY_AFTER=n loses the "device" after n successful stream
// synchronizations: from then on every work call answers cudaErrorIllegalAddress, as a
// real context does after a sticky error (the engine must mark itself lost).
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

std::mutex g_mu;
std::unordered_map<void*, size_t> g_allocs;
size_t g_used = 0;
thread_local cudaError_t g_last = cudaSuccess;

size_t cap_bytes() {
  static const size_t cap = [] {
    const char* v = std::getenv("IMAGEREWARD_EMU_MEMORY");
    return v && *v ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : static_cast<size_t>(16) << 30;
  }();
  return cap;
}

cudaError_t fail(cudaError_t e) {
  g_last = e;
  return e;
}

std::atomic<long> g_syncs{0};
std::atomic<bool> g_lost{false};
std::atomic<cudaError_t> g_lost_err{cudaErrorIllegalAddress};  // what a lost device answers
bool lost() { return g_lost.load(); }
void count_sync() {
  static const long after = [] {
    const char* v = std::getenv("IMAGEREWARD_EMU_STICKY_AFTER");
    return v && *v ? std::strtol(v, nullptr, 10) : -1L;
  }();
  if (after >= 0 && g_syncs.fetch_add(1) >= after) g_lost = true;
}

// ---- stream capture (kernel simulator builds) ----------------------------------------------
using Op = std::function<void()>;
struct Capture {
  cudaStream_t stream = nullptr;
  std::vector<Op> ops;
  bool invalid = false;
};
struct GraphOps {
  std::vector<Op> ops;
};
thread_local Capture* t_capture = nullptr;  // ThreadLocal mode: the capture this thread began

#ifdef IR_CUDA_SIM_RUNTIME
constexpr bool kCanCapture = true;
#else
constexpr bool kCanCapture = false;
#endif

// Records op when `s` is capturing on this thread (true), else the caller runs it now.
bool record(cudaStream_t s, Op op) {
  if (!t_capture || t_capture->stream != s) return false;
  t_capture->ops.push_back(std::move(op));
  return true;
}

// A call a capturing thread may not make: the capture is invalidated.
bool capture_forbids() {
  if (!t_capture) return false;
  t_capture->invalid = true;
  return true;
}

}  // namespace

extern "C" {

// For the simulator's kernel launches and the emulated cuBLASLt (found by dlsym): returns 1
// when `s` is capturing on this thread and the work was recorded (run(ctx) at each graph
// launch, free_ctx(ctx) with the graph), 0 when the caller must run it now.
// Whether `s` is capturing on this thread (so a caller records instead of running).
__attribute__((visibility("default"))) int ir_emu_capturing(cudaStream_t s) { return t_capture && t_capture->stream == s ? 1 : 0; }

__attribute__((visibility("default"))) int ir_emu_capture_record(cudaStream_t s, void (*run)(void*), void* ctx, void (*free_ctx)(void*)) {
  if (!t_capture || t_capture->stream != s) return 0;
  std::shared_ptr<void> owned(ctx, free_ctx);
  t_capture->ops.push_back([run, owned] { run(owned.get()); });
  return 1;
}

// Hooks for the kernel simulator (tests/sim/): a fault inside a kernel loses the device
// with that error, as a real context does; a bad launch configuration is the calling
// thread's last error.
void ir_emu_device_fault(cudaError_t err) {
  g_lost_err = err;
  g_lost = true;
}
void ir_emu_set_last_error(cudaError_t err) { g_last = err; }

cudaError_t CUDARTAPI cudaMalloc(void** p, size_t n) {
  if (lost()) return fail(g_lost_err.load());
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  if (!p) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> l(g_mu);
  if (g_used + n > cap_bytes()) {
    *p = nullptr;
    return fail(cudaErrorMemoryAllocation);
  }
  // Exactly n bytes (256-byte aligned like cudaMalloc): under AddressSanitizer (the
  // kernel simulator's sanitized build) a read one element past the end is reported.
  void* q = nullptr;
  if (posix_memalign(&q, 256, n ? n : 1) != 0 || !q) return fail(cudaErrorMemoryAllocation);
  g_allocs[q] = n;
  g_used += n;
  *p = q;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaFree(void* p) {
  if (!p) return cudaSuccess;
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_allocs.find(p);
  if (it == g_allocs.end()) return fail(cudaErrorInvalidValue);
  g_used -= it->second;
  g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaHostAlloc(void** p, size_t n, unsigned int) {
  if (!p) return fail(cudaErrorInvalidValue);
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256 + 256);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t CUDARTAPI cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemcpy(void* d, const void* s, size_t n, enum cudaMemcpyKind) {
  if (lost()) return fail(g_lost_err.load());
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemcpyAsync(void* d, const void* s, size_t n, enum cudaMemcpyKind, cudaStream_t st) {
  if (lost()) return fail(g_lost_err.load());
  if (record(st, [d, s, n] { if (n) std::memmove(d, s, n); })) return cudaSuccess;
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t st) {
  if (lost()) return fail(g_lost_err.load());
  if (record(st, [d, v, n] { if (n) std::memset(d, v, n); })) return cudaSuccess;
  if (n) std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaMemset(void* d, int v, size_t n) {
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  return cudaMemsetAsync(d, v, n, nullptr);
}

cudaError_t CUDARTAPI cudaDeviceSynchronize(void) {
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  return lost() ? fail(g_lost_err.load()) : cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t) {
  if (capture_forbids()) return fail(cudaErrorStreamCaptureUnsupported);
  count_sync();
  return lost() ? fail(g_lost_err.load()) : cudaSuccess;
}

cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  static std::atomic<uintptr_t> next{0x1000};
  *s = reinterpret_cast<cudaStream_t>(next.fetch_add(0x10));  // an opaque, never dereferenced handle
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }

cudaError_t CUDARTAPI cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t CUDARTAPI cudaGetDeviceProperties(struct cudaDeviceProp* p, int d) {
  if (d != 0) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof(*p));
#ifdef IR_CUDA_SIM_RUNTIME
  std::strncpy(p->name, "CPU kernel simulator (tests/sim)", sizeof(p->name) - 1);
#else
  std::strncpy(p->name, "CPU emulation (ir_engine_emu)", sizeof(p->name) - 1);
#endif
  p->totalGlobalMem = cap_bytes();
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaMemGetInfo(size_t* free_b, size_t* total) {
  std::lock_guard<std::mutex> l(g_mu);
  *total = cap_bytes();
  *free_b = cap_bytes() - g_used;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaDriverGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t CUDARTAPI cudaGetLastError(void) {
  const cudaError_t e = g_last;
  g_last = cudaSuccess;
  return e;
}

cudaError_t CUDARTAPI cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
  if (!kCanCapture) return fail(cudaErrorNotSupported);
  if (lost()) return fail(g_lost_err.load());
  if (!s || mode != cudaStreamCaptureModeThreadLocal) return fail(cudaErrorNotSupported);  // all the engine uses
  if (t_capture) return fail(cudaErrorIllegalState);
  t_capture = new Capture{s, {}, false};
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  if (g) *g = nullptr;
  if (!t_capture || t_capture->stream != s) return fail(cudaErrorIllegalState);
  std::unique_ptr<Capture> c(t_capture);
  t_capture = nullptr;
  if (c->invalid) return fail(cudaErrorStreamCaptureInvalidated);
  if (g) *g = reinterpret_cast<cudaGraph_t>(new GraphOps{std::move(c->ops)});
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (!kCanCapture || !g || !e) return fail(kCanCapture ? cudaErrorInvalidValue : cudaErrorNotSupported);
  *e = reinterpret_cast<cudaGraphExec_t>(new GraphOps{reinterpret_cast<GraphOps*>(g)->ops});
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!kCanCapture || !e) return fail(kCanCapture ? cudaErrorInvalidValue : cudaErrorNotSupported);
  if (lost()) return fail(g_lost_err.load());
  if (t_capture && t_capture->stream == s) return fail(cudaErrorNotSupported);  // a graph inside a capture: not emulated
  for (const Op& op : reinterpret_cast<GraphOps*>(e)->ops) {
    op();
    if (lost()) return fail(g_lost_err.load());  // a kernel fault inside the graph
  }
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphDestroy(cudaGraph_t g) {
  delete reinterpret_cast<GraphOps*>(g);
  return cudaSuccess;
}
cudaError_t CUDARTAPI cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete reinterpret_cast<GraphOps*>(e);
  return cudaSuccess;
}

const char* CUDARTAPI cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    default: return "cudaError (emulation)";
  }
}

const char* CUDARTAPI cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory (IMAGEREWARD_EMU_MEMORY)";
    case cudaErrorNotSupported: return "operation not supported by the CPU emulation";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (IMAGEREWARD_EMU_STICKY_AFTER)";
    case cudaErrorMisalignedAddress: return "misaligned address (kernel simulator)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (kernel simulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "error in the CPU emulation";
  }
}

}  // extern "C"
