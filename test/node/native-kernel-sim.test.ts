// The CUDA engine's real kernels on the CPU, through the kernel simulator (native/tests/sim):
// every kernel file (src/cuda/*.cu but engine.cu and the cuBLASLt GEMMs) and the per-op
// test driver (tests/test_ops.cu) are rewritten to host C++ and run with fibers for
// threads; barriers, warp shuffles, WMMA tiles, shared memory and launch limits are
// simulated and checked (native/tests/sim/cuda_sim.h). Built wherever the engine
// emulation is (CI: nvcc's headers are there). Three layers:
//   1. the simulator's own detectors, each on a deliberately broken kernel (a test of
//      the tool: if it cannot see these, its passes below would mean nothing);
//   2. test_ops.cu's cases against their CPU references with the threads run in three
//      orders (a result that changes with the order is a race), with an A100's smaller
//      shared-memory opt-in (the attention kernel's fewer-warps path), and once under
//      AddressSanitizer + UndefinedBehaviorSanitizer (out-of-bounds, misaligned vectors);
//   3. the whole engine (tools/engine_check.cc) over the simulated kernels and gemm.cu on
//      an emulated cuBLASLt (native/tests/sim/cublaslt_emu.cc, through the engine's own
//      loader), end to end against ONNX Runtime fp32 on the small random model — also
//      under AddressSanitizer + UBSan (an out-of-bounds read on a GPU is a lost context).
// The real cuBLASLt, CUDA graphs, concurrent streams on a device and everything
// timing-related still need a GPU (native/scripts/gpu-check.sh).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSmallEngineCheck } from '../support/small-engine-model.js';
import { runTool, tableRow } from '../support/engine-check-output.js';

const TOOLS = join(import.meta.dirname, '..', '..', 'native', 'build', 'tools');
const SELFTEST = join(TOOLS, 'ir_sim_selftest');
const OPS = join(TOOLS, 'ir_test_ops_sim');
const OPS_SAN = join(TOOLS, 'ir_test_ops_sim_san');
const ENGINE = join(TOOLS, 'ir_engine_sim');
const ENGINE_SAN = join(TOOLS, 'ir_engine_sim_san');
// cuBLASLt's documented semantics on the CPU, loaded by the engine's own loader
const CUBLASLT = { IMAGEREWARD_CUBLASLT: join(TOOLS, 'libcublaslt_emu.so') };
// CI builds with IMAGEREWARD_CUDA=ON: there a missing simulator is a failure, not a skip.
const mustBuild = process.env.IMAGEREWARD_CUDA === 'ON';
const has = (bin: string) => mustBuild || existsSync(bin);
const why = (bin: string) => (has(bin) ? '' : ` — skipped: ${bin.split('/').pop()} was not built (no CUDA headers, or no sanitizers)`);

const sim = runTool;

describe(`the simulator's detectors, each on a broken kernel (ir_sim_selftest)${why(SELFTEST)}`, () => {
  const orders = ['forward', 'reverse'] as const;
  const cases: { name: string; expect: RegExp[]; code?: 'nonzero' }[] = [
    { name: 'ok-reduce', expect: [/RESULT ok-reduce sum=-6 want=-6 err=cudaSuccess/] },
    { name: 'race', expect: [/RESULT race wrong=[1-9]\d* err=cudaSuccess/] },
    { name: 'race-fixed', expect: [/RESULT race-fixed wrong=0 err=cudaSuccess/] },
    { name: 'race-warps', expect: [/RESULT race-warps wrong=[1-9]\d* err=cudaSuccess/] },
    { name: 'race-warps-fixed', expect: [/RESULT race-warps-fixed wrong=0 err=cudaSuccess/] },
    { name: 'syncwarp-missing', expect: [/missing __syncwarp\(\)/, /RESULT syncwarp-missing wrong=\d+ err=cudaErrorLaunchFailure/] },
    { name: 'syncwarp-fixed', expect: [/RESULT syncwarp-fixed wrong=0 err=cudaSuccess/] },
    { name: 'wmma-misaligned', expect: [/not 256-bit aligned/, /err=cudaErrorMisalignedAddress/] },
    { name: 'shfl-exited', expect: [/__shfl_xor_sync \(mask ffffffff\) names lane 16, which has exited/, /err=cudaErrorLaunchFailure/] },
    { name: 'syncthreads-exited', expect: [/__syncthreads\(\) after this thread exited/, /err=cudaErrorLaunchFailure/] },
    { name: 'divergent', expect: [/divergent warp collectives/, /err=cudaErrorLaunchFailure/] },
    { name: 'deadlock', expect: [/deadlock: waits at/, /err=cudaErrorLaunchFailure/] },
    { name: 'block-too-big', expect: [/launch=cudaErrorInvalidConfiguration next=cudaSuccess sync=cudaSuccess/] },
    {
      name: 'smem-limit',
      expect: [/before=cudaErrorInvalidValue optin_exceeded=cudaErrorInvalidValue raised=cudaSuccess after=cudaSuccess/],
    },
    { name: 'smem-uninit', expect: [/RESULT smem-uninit value=nan err=cudaSuccess/] },
    { name: 'oob-read', expect: [/AddressSanitizer: heap-buffer-overflow/, /read_past_end_kernel/], code: 'nonzero' },
    { name: 'misaligned-float4', expect: [/misaligned address .* requires 16 byte alignment/], code: 'nonzero' },
  ];
  const table = cases.flatMap((c) => orders.map((order) => ({ ...c, order })));
  it.skipIf(!has(SELFTEST)).each(table)('$name ($order order)', async (c) => {
    const r = await sim(SELFTEST, [c.name], { IR_SIM_ORDER: c.order });
    if (c.code === 'nonzero') {
      expect(r.code, r.out).not.toBe(0);
      expect(r.out).not.toMatch(/RESULT .* not-detected/);
    } else {
      expect(r.code, r.out).toBe(0);
    }
    for (const re of c.expect) expect(r.out).toMatch(re);
  });
});

/** test_ops.cu's case lines: `<op> <T> <shape> maxdiff=<d> tol=<t> PASS|FAIL`. */
function caseLines(out: string): { pass: string[]; fail: string[] } {
  const lines = out.split('\n').filter((l) => /\smaxdiff=\S+ tol=\S+ (PASS|FAIL)$/.test(l));
  return { pass: lines.filter((l) => l.endsWith('PASS')), fail: lines.filter((l) => l.endsWith('FAIL')) };
}

function expectAllOpsPass(out: string, code: number, gemm: boolean, noBiasEpilogue = false) {
  expect(code, out).toBe(0);
  const { pass, fail } = caseLines(out);
  expect(fail, out).toEqual([]);
  expect(out).toMatch(/^ALL PASSED: 0 failure\(s\)$/m);
  // every op family and both storage types ran (GEMMs are cuBLASLt: GPU only)
  for (const op of ['normalize_u8', 'vit_patchify', 'vit_assemble', 'bert_embed_ln', 'layernorm', 'attn_vit', 'attn_txt_self', 'attn_cross', 'attn_odd', 'bias_gelu', 'bias_residual', 'add_bias', 'add_bias_seed', 'convert_f32', 'reward_head', 'gelu_inplace']) {
    expect(pass.some((l) => l.startsWith(`${op} `)), `${op} in:\n${out}`).toBe(true);
  }
  expect(pass.filter((l) => /^attn_\w+\s+bf16 /.test(l)).length).toBeGreaterThanOrEqual(9);
  expect(pass.filter((l) => /^attn_\w+\s+f16 /.test(l)).length).toBeGreaterThanOrEqual(9);
  expect(pass.length).toBeGreaterThanOrEqual(77); // 77 without the GEMMs when written
  if (gemm) {
    // gemm.cu's every engine configuration through the emulated cuBLASLt, both types
    for (const g of ['gemm_patch', 'gemm_vit_qkv', 'gemm_vit_proj', 'gemm_vit_fc1 ', 'gemm_vit_fc1_t', 'gemm_vit_fc2', 'gemm_cross_kv', 'gemm_txt_qkv', 'gemm_txt_dense', 'gemm_txt_inter', 'gemm_txt_out', 'gemm_bias_t', 'gemm_plain_t', 'gemm_odd', 'gemm_reuse']) {
      if (noBiasEpilogue && g === 'gemm_bias_t') continue; // a T bias alone has no fallback
      expect(pass.filter((l) => l.startsWith(g)).length, `${g} in:\n${out}`).toBeGreaterThanOrEqual(2);
    }
    // where the biases ran: cuBLASLt's epilogue, or (a library without one) add_bias seeding D
    for (const t of ['bf16', 'f16']) {
      const m = new RegExp(`^gemm_epilogue +${t} +bias in our add_bias kernel for (\\d+) of (\\d+) plans INFO$`, 'm').exec(out);
      expect(m, out).not.toBeNull();
      if (noBiasEpilogue) expect(Number(m![1])).toBeGreaterThanOrEqual(15);
      else expect(Number(m![1])).toBe(0);
    }
    expect(out).toMatch(/^gemm_badargs +bf16 null operands -> ENGINE_BAD_INPUT PASS$/m);
    // an operand off cuBLASLt's default 256-byte alignment is refused before the library
    expect(out.match(/^gemm_misalign +(bf16|f16) +[AWD] off 256 B -> ENGINE_BAD_INPUT PASS$/gm)?.length).toBe(6);
    expect(out).toMatch(/^gemm_plans +f16 .* plans added=1 \(expect <= 1\) PASS$/m);
  } else {
    expect(out).toMatch(/^gemm +bf16 skipped: IMAGEREWARD_CUBLASLT is not set/m);
  }
  expect(out).not.toMatch(/^ir_sim: /m); // no fault, no bad launch
}

describe(`the kernels against their CPU references (ir_test_ops_sim)${why(OPS)}`, () => {
  const runs: { name: string; env: NodeJS.ProcessEnv }[] = [
    { name: 'threads in index order, GEMMs through gemm.cu on the emulated cuBLASLt', env: { IR_SIM_ORDER: 'forward', ...CUBLASLT } },
    { name: 'threads in reverse order', env: { IR_SIM_ORDER: 'reverse' } },
    { name: 'threads shuffled (seed 7)', env: { IR_SIM_ORDER: 'shuffle', IR_SIM_SEED: '7' } },
    { name: "an A100's 163 KB shared-memory opt-in (attention on 7 warps)", env: { IR_SIM_SMEM_OPTIN: '166912' } },
    // a cuBLASLt with no BIAS-epilogue algorithm: every biased GEMM falls back to add_bias
    // seeding D, then beta = 1 (gemm.cuh) — within the same bars, graphs included
    { name: 'GEMMs on a cuBLASLt without BIAS epilogues', env: { ...CUBLASLT, IR_CUBLASLT_EMU_NO_BIAS: '1' } },
  ];
  it.skipIf(!has(OPS)).each(runs)('every non-GEMM case passes: $name', async ({ env }) => {
    const r = await sim(OPS, [], env);
    expectAllOpsPass(r.out, r.code, 'IMAGEREWARD_CUBLASLT' in env, 'IR_CUBLASLT_EMU_NO_BIAS' in env);
  }, 120_000);

  it.skipIf(!has(OPS))('--bench is refused without a GPU', async () => {
    const r = await sim(OPS, ['--bench']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--bench needs a GPU/);
  });

  it.skipIf(!has(OPS_SAN))(`every non-GEMM case passes under AddressSanitizer + UBSan${why(OPS_SAN)}`, async () => {
    const r = await sim(OPS_SAN, [], { IR_SIM_ORDER: 'reverse' });
    expectAllOpsPass(r.out, r.code, false);
    expect(r.out).not.toMatch(/AddressSanitizer|runtime error/);
  }, 300_000);
});

describe(`the engine over the simulated kernels, end to end (ir_engine_sim)${why(ENGINE)}`, () => {
  let work: string;
  let model: string;
  let refs: string;
  beforeAll(async () => {
    if (!has(ENGINE)) return;
    work = await mkdtemp(join(tmpdir(), 'ir-engine-sim-'));
    ({ model, refs } = await writeSmallEngineCheck(work));
  }, 120_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  // Bars as for the emulation (native-engine-emu.test.ts): the kernels add their own
  // rounding (P in T inside attention), measured 2.65e-3 / 2.68e-4 when written.
  const cases: { name: string; args: string[]; bar: number; env?: NodeJS.ProcessEnv }[] = [
    { name: 'bf16', args: [], bar: 5e-3 },
    { name: 'fp16', args: ['--fp16'], bar: 1e-3 },
    { name: 'bf16, ViT fc1 → T with the GELU kernel in place', args: ['--fc1-t'], bar: 5e-3 },
    { name: 'bf16, 3 slots on 3 threads at once', args: ['--streams', '3'], bar: 5e-3 },
    // measured 2.80e-3 when written (2.65e-3 with the epilogue): T outputs add a T-rounded bias
    { name: 'bf16 on a cuBLASLt without BIAS epilogues (add_bias seeds D)', args: [], bar: 5e-3, env: { IR_CUBLASLT_EMU_NO_BIAS: '1' } },
  ];
  it.skipIf(!has(ENGINE)).each(cases)('$name: every reward within the bar of ONNX Runtime fp32, ranking kept', async ({ args, bar, env }) => {
    const r = await sim(ENGINE, ['--model', model, '--refs', refs, '--bar', String(bar), ...args], { ...CUBLASLT, ...env });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/CPU kernel simulator .*cuBLASLt 13\.0\.0/);
    const parity = tableRow(r.out, /^\| parity: max abs/);
    expect(parity.pass).toBe(true);
    expect(parity.value).toBeLessThanOrEqual(bar);
    expect(parity.value).toBeGreaterThan(0);
    expect(r.out).toMatch(/^\| ranking where refs differ > 0\.05 \(\d+ pairs\) \| PASS \|$/m);
    expect(r.out).not.toMatch(/^ir_sim: /m);
    // CUDA graphs: every bucket captured (the simulator records and replays them); the
    // threads-at-once pass runs on replayed graphs (a no-op replay fails it: 0.36 when tried)
    expect(r.out).toMatch(/^\| CUDA graphs captured \/ failed \| [1-9]\d* \/ 0 \|$/m);
    const threads = r.out.split('\n').find((l) => /^\| \d threads at once vs ref/.test(l));
    expect(threads, r.out).toMatch(/ PASS \|$/);
    const seeded = /^\| GEMM plans with the bias seeded by add_bias \(no BIAS epilogue\) \| (\d+) \|$/m.exec(r.out);
    expect(seeded, r.out).not.toBeNull();
    if (env?.IR_CUBLASLT_EMU_NO_BIAS) expect(Number(seeded![1])).toBeGreaterThan(0);
    else expect(Number(seeded![1])).toBe(0);
  }, 120_000);

  it.skipIf(!has(ENGINE_SAN))(`the whole forward under AddressSanitizer + UBSan: no out-of-bounds or misaligned access anywhere${why(ENGINE_SAN)}`, async () => {
    const r = await sim(ENGINE_SAN, ['--model', model, '--refs', refs, '--bar', '5e-3'], {
      IMAGEREWARD_CUBLASLT: join(TOOLS, 'libcublaslt_emu_san.so'),
    });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^\| parity: max abs\(reward - fp32 ref\), 12 pairs \(bar 0\.005\) \| [0-9.e-]+ PASS \|$/m);
    expect(r.out).not.toMatch(/AddressSanitizer|runtime error|^ir_sim: /m);
  }, 300_000);

  it.skipIf(!has(ENGINE))('without a cuBLASLt to load: the typed ENGINE_CUBLAS_MISSING, not a crash', async () => {
    const r = await sim(ENGINE, ['--model', model, '--refs', refs], { IMAGEREWARD_CUBLASLT: '/nonexistent/libcublasLt.so.13' });
    expect(r.code, r.out).not.toBe(0);
    expect(r.out).toMatch(/ENGINE_CUBLAS_MISSING/);
  });
});
