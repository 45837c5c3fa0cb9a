# rewrite_cuda.cmake — turns a .cu file into host C++ for the kernel simulator (cuda_sim.h):
#   name<T><<<grid, block, smem, stream>>>(args)  →  ::ir_sim::launch("name", name<T>, ::ir_sim::Cfg(grid, block, smem, stream), args)
#   extern __shared__ __align__(n) unsigned char buf[];  →  unsigned char* buf = ::ir_sim::dynamic_smem();
# Everything else is kept, line for line (a #line directive keeps compiler messages
# pointing at the original file). Usage: cmake -DIN=<file.cu> -DOUT=<file.cc> -P rewrite_cuda.cmake
file(READ "${IN}" src)
# (two passes: CMake rejects \2 when an optional group did not take part)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*)(<[^<>;]*>)<<<([^>]*)>>>\\("
       "::ir_sim::launch(\"\\1\", \\1\\2, ::ir_sim::Cfg(\\3), " src "${src}")
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*)<<<([^>]*)>>>\\("
       "::ir_sim::launch(\"\\1\", \\1, ::ir_sim::Cfg(\\2), " src "${src}")
string(REGEX REPLACE "extern __shared__ (__align__\\([0-9]+\\) )?unsigned char ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "unsigned char* \\2 = ::ir_sim::dynamic_smem();" src "${src}")
if(src MATCHES "<<<|extern __shared__")
  message(FATAL_ERROR "rewrite_cuda: ${IN} has a launch or extern __shared__ form the simulator cannot rewrite")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
