// Caps the bytes of stats messages in flight across all streams. A stream
// holds its share from the moment its message is handed to the transport
// until the transport asks for the next one (connect writes one message at
// a time and waits for the client to take it). Streams over the cap wait,
// and meanwhile their subscription collapses its queue into one snapshot:
// 1,000 subscribers of a 700 KB snapshot cannot pin 1,000 copies at once.

export class ByteBudget {
  private used = 0;
  private readonly waiting: { n: number; go: () => void }[] = [];
  /** Highest number of bytes in flight seen (for tests and metrics). */
  peak = 0;

  constructor(readonly limit: number) {}

  get inFlight(): number {
    return this.used;
  }

  /** Takes n bytes if there is room now (and nobody waits before us); false otherwise. */
  tryAcquire(n: number): boolean {
    if (!this.fits(n) || this.waiting.length) return false;
    this.take(n);
    return true;
  }

  /** Waits for room for n bytes; one message larger than the limit goes alone. */
  acquire(n: number, signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire(n)) return Promise.resolve();
    // An aborted signal never fires "abort" again: waiting would be forever.
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const w = {
        n,
        go: () => {
          signal?.removeEventListener("abort", onAbort);
          this.take(n);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal!.reason);
        this.drain();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  /** Takes n bytes without waiting (a message turned out bigger than reserved). */
  force(n: number): void {
    this.take(n);
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    this.drain();
  }

  private fits(n: number): boolean {
    return this.used === 0 || this.used + n <= this.limit;
  }

  private take(n: number): void {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  private drain(): void {
    // First come, first served: a big message is not starved by small ones.
    while (this.waiting.length && this.fits(this.waiting[0]!.n)) this.waiting.shift()!.go();
  }
}
