// The abort signal of a REST call, made only if something reads it. A
// REST call's implementation rarely looks at its signal (most answer from
// memory), but an AbortController and its AbortSignal (an EventTarget)
// cost ~5 % of a GET /1.0/info's CPU to make; so the controller is made on
// the first read of `signal`, already aborted if the call was by then. The
// reason may be given as a function, called only if a signal exists to
// carry it (the call's end reason is a ConnectError, whose metadata loads
// node's fetch implementation, ~3 MB, on first use).

export class LazyAbort {
  private controller: AbortController | undefined;
  /** Set once aborted: what makes the reason. */
  private reason: (() => unknown) | undefined;

  /** The call's signal (made now if it was not yet). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason());
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  /** Aborts once; later calls change nothing (like AbortController.abort). */
  abort(reason?: unknown): void {
    this.abortWith(() => reason);
  }

  /** abort(reason()), with reason() called only if the signal was or is ever read. */
  abortWith(reason: () => unknown): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason());
  }
}
