// Running the engine's C++ tools (ir_engine_emu, ir_engine_sim, ir_test_ops_sim, …) from a
// test, and reading engine_check's summary table. Shared by the emulation and simulator tests.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const run = promisify(execFile);

/** Runs `bin` with `env` over process.env; exit code and stdout + stderr, never throws. */
export async function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(bin, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** The value of a `| label… | 1.23e-03 PASS |` row of engine_check's table. */
export function tableRow(out: string, label: RegExp): { value: number; pass: boolean } {
  const line = out.split('\n').find((l) => l.startsWith('| ') && label.test(l));
  expect(line, `row ${label} in:\n${out}`).toBeDefined();
  const m = /\|\s*([0-9.eE+-]+)\s+(PASS|FAIL)\s*\|\s*$/.exec(line!);
  expect(m, line).not.toBeNull();
  return { value: Number(m![1]), pass: m![2] === 'PASS' };
}
