// Backend choice: the CUDA engine when it can run here, else ONNX Runtime on
// CPU. 'auto' tries them in that order and keeps the reason each candidate was
// skipped, so the service and CLI can say why they run on what they run on.
import type { BackendName, ScoringBackend } from './backend.js';
import { NativeBackend, type NativeBackendOptions } from './native-backend.js';
import { OrtBackend, type OrtBackendOptions } from './ort-backend.js';

export type BackendChoice = BackendName | 'auto';

export interface SelectBackendOptions {
  backend?: BackendChoice | undefined;
  ort?: OrtBackendOptions | undefined;
  native?: NativeBackendOptions | undefined;
}

export interface SelectedBackend {
  backend: ScoringBackend;
  /** Candidates tried before `backend`, with why each was not used. */
  skipped: { name: BackendName; reason: string }[];
}

export async function selectBackend(modelDir: string, opts: SelectBackendOptions = {}): Promise<SelectedBackend> {
  const choice = opts.backend ?? 'auto';
  if (choice === 'ort') return { backend: await OrtBackend.load(modelDir, opts.ort), skipped: [] };
  if (choice === 'native') return { backend: await NativeBackend.load(modelDir, opts.native), skipped: [] };
  const skipped: SelectedBackend['skipped'] = [];
  try {
    return { backend: await NativeBackend.load(modelDir, opts.native), skipped };
  } catch (err) {
    const e = err as Error & { code?: string };
    skipped.push({ name: 'native', reason: e.code ? `${e.code}: ${e.message}` : e.message });
  }
  return { backend: await OrtBackend.load(modelDir, opts.ort), skipped };
}
