// One operation on many amphorae (an active/standby pair, a fleet) with a
// concurrency limit. Every target gets its own result, so a caller always
// knows which amphora failed and why; nothing is thrown for a partial failure.
import { Code, ConnectError } from "@connectrpc/connect";
import { toAmphoraError, type AmphoraError } from "./errors.js";

export type FanOutResult<T, R> =
  | { target: T; ok: true; value: R }
  | { target: T; ok: false; error: AmphoraError };

export interface FanOutOptions {
  /** Operations running at the same time (default 8). */
  concurrency?: number;
  /** Aborting fails the targets not started yet with `canceled`; running ones see the signal. */
  signal?: AbortSignal;
  /** Names a target in its error when the operation's error does not (e.g. its URL). */
  describe?: (target: unknown) => string;
}

/** Results in the order of `targets`. */
export async function fanOut<T, R>(
  targets: readonly T[],
  op: (target: T, signal: AbortSignal | undefined, index: number) => Promise<R>,
  o: FanOutOptions = {},
): Promise<FanOutResult<T, R>[]> {
  const limit = Math.max(1, Math.floor(o.concurrency ?? 8));
  const results = new Array<FanOutResult<T, R>>(targets.length);
  let nextIndex = 0;
  const worker = async () => {
    for (;;) {
      const i = nextIndex++;
      if (i >= targets.length) return;
      const target = targets[i]!;
      const agent = o.describe?.(target);
      if (o.signal?.aborted) {
        const error = toAmphoraError(new ConnectError("not started: canceled", Code.Canceled), { agent });
        results[i] = { target, ok: false, error };
        continue;
      }
      try {
        results[i] = { target, ok: true, value: await op(target, o.signal, i) };
      } catch (e) {
        results[i] = { target, ok: false, error: toAmphoraError(e, { agent }) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, targets.length) }, worker));
  return results;
}
