// Is the Hub (or the HF_ENDPOINT mirror) reachable at all? One HEAD request with
// a short deadline, before a download is tried: offline, `npm start` must fall
// back to the demo model in seconds, not after fetchFile's retries and its 60 s
// idle timeout (which are right for a 1.8 GB download, wrong for "is there a
// network"). Any HTTP answer, even an error status, means reachable.
export type ProbeResult = { ok: true; status: number } | { ok: false; reason: string };

export async function probeEndpoint(url: string, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;
  try {
    const res = await fetch(url, { method: 'HEAD', redirect: 'manual', signal: combined });
    await res.arrayBuffer().catch(() => undefined);
    return { ok: true, status: res.status };
  } catch (err) {
    if (deadline.aborted) return { ok: false, reason: `no answer within ${Math.round(timeoutMs / 1000)} s` };
    if (signal?.aborted) return { ok: false, reason: 'aborted' };
    // fetch wraps the socket error (ENOTFOUND, ECONNREFUSED …) in `cause`.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, reason: cause?.code ?? cause?.message ?? (err as Error).message };
  }
}
