// Retries for calls that are safe to repeat: only unary methods the contract
// declares side-effect free (idempotency_level = NO_SIDE_EFFECTS), and only
// when the agent was unavailable (not reachable, restarting, busy). A PUT
// that timed out may have been applied, so nothing with a side effect is
// ever repeated behind the caller's back.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.js";

export interface RetryOptions extends BackoffOptions {
  /** Attempts in total, the first included (default 4). 1 disables retries. */
  maxAttempts?: number;
  /** Called before each retry (for logs and tests). */
  onRetry?: (info: { procedure: string; attempt: number; delayMs: number; error: ConnectError }) => void;
}

export function retryInterceptor(o: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, o.maxAttempts ?? 4);
  return (next) => async (req) => {
    if (req.stream || req.method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || maxAttempts === 1) {
      return next(req);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code !== Code.Unavailable || attempt >= maxAttempts || req.signal.aborted) throw e;
        const delayMs = backoffDelay(attempt, o);
        o.onRetry?.({ procedure: `${req.service.typeName}/${req.method.name}`, attempt, delayMs, error: err });
        try {
          // req.signal carries the call's deadline: retries share it.
          await sleep(delayMs, req.signal);
        } catch {
          // The deadline passed while waiting: the unavailable error says
          // more about what went wrong than "deadline exceeded" would.
          throw e;
        }
      }
    }
  };
}
