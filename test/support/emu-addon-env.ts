// Imported FIRST by tests that run the native addon built over the engine's CPU emulation
// (native/build/Release/imagereward_native_emu.node): native/index.ts picks its binary when
// it is first evaluated, and static imports are evaluated in order, so this must precede
// every import that reaches native/index.ts. The test clears the variable afterwards
// (clearEmuAddonEnv) so child processes it starts do not inherit it by accident.
import { join } from 'node:path';

export const EMU_ADDON = join(import.meta.dirname, '..', '..', 'native', 'build', 'Release', 'imagereward_native_emu.node');
process.env.IMAGEREWARD_NATIVE_ADDON = EMU_ADDON;

export function clearEmuAddonEnv(): void {
  delete process.env.IMAGEREWARD_NATIVE_ADDON;
}
