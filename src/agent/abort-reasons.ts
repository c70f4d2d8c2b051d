// Reasonless aborts without a stack trace, in the agent's own process.
//
// Connect aborts two AbortControllers per RPC without giving a reason: the
// request's when its HTTP/2 stream closes (connect-node's adapter) and the
// handler context's when the call ends (connect's handlers). Node then makes
// the default reason, a new DOMException "AbortError", and capturing its
// stack trace there cost ~13 µs each: together ~10 % of a Connect call's
// server CPU, the largest item in the profile of `npm run bench --
// request-path` (agent and ceiling alike). Such a stack only names the
// library line that called abort(), so the agent makes the default reason
// without one. Every abort still gets its own DOMException with the name,
// message and code the platform gives; an explicit reason is untouched.
//
// Installed by the agent's entry point only: library code (the driver)
// never changes its host process's globals.

const INSTALLED = Symbol.for("amphora-agent.stacklessAbortReasons");

/** The reason AbortController.abort() gives when called without one, minus the stack trace. */
export function stacklessAbortError(): DOMException {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DOMException("This operation was aborted", "AbortError");
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Makes AbortController.abort() without a reason use stacklessAbortError(); idempotent. */
export function installStacklessAbortReasons(): void {
  const proto = AbortController.prototype as AbortController & { [INSTALLED]?: true };
  if (proto[INSTALLED]) return;
  const platformAbort = proto.abort;
  Object.defineProperty(proto, "abort", {
    value: function abort(this: AbortController, reason?: unknown): void {
      platformAbort.call(this, reason === undefined ? stacklessAbortError() : reason);
    },
    writable: true,
    configurable: true,
    enumerable: Object.getOwnPropertyDescriptor(proto, "abort")?.enumerable ?? true,
  });
  Object.defineProperty(proto, INSTALLED, { value: true });
}
