// Exponential backoff with full jitter, and a sleep that an AbortSignal ends.

export interface BackoffOptions {
  /** First delay (default 100 ms). */
  initialMs?: number;
  /** Upper bound of any delay (default 5 s). */
  maxMs?: number;
  /** Growth factor per attempt (default 2). */
  multiplier?: number;
}

/**
 * Delay before retry number `attempt` (1-based): a random value in
 * [base/2, base] where base = initial * multiplier^(attempt-1), capped. Half
 * the base stays fixed so retries never hammer; the random half spreads a
 * fleet of clients that lost the same agent.
 */
export function backoffDelay(attempt: number, o: BackoffOptions = {}): number {
  const initial = o.initialMs ?? 100;
  const max = o.maxMs ?? 5000;
  const base = Math.min(max, initial * (o.multiplier ?? 2) ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
