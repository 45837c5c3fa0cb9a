// engine_emu.cc — the engine's own source (src/cuda/engine.cu: host code only, all its
// kernels live in the op files) compiled as host C++ for ir_engine_emu. Including the
// .cu keeps one source of truth; see ops_emu.cc for what the emulation is for.
#include "cuda/engine.cu"
