// When to start again a haproxy that exited on its own. There is no systemd
// here to restart it (Octavia's agent relies on an enabled unit), so the
// manager does, with a delay that doubles while haproxy keeps dying soon
// after each start or while starts keep failing, so a crash loop costs a
// start every `maxMs` at most rather than a busy loop.
export interface BackoffOptions {
  /** First delay after an exit (default 1 s). */
  initialMs: number;
  /** Longest delay (default 30 s). */
  maxMs: number;
}

interface State {
  delayMs: number;
  /** Consecutive failed starts. */
  failures: number;
  /** Last successful start; an exit within 2 × maxMs of it counts as a crash loop. */
  startedAt?: number;
  timer?: NodeJS.Timeout;
}

export class RestartBackoff {
  private readonly state = new Map<string, State>();

  constructor(private readonly o: BackoffOptions = { initialMs: 1000, maxMs: 30_000 }) {}

  private get(key: string): State {
    let s = this.state.get(key);
    if (!s) this.state.set(key, (s = { delayMs: 0, failures: 0 }));
    return s;
  }

  private grow(s: State): number {
    s.delayMs = Math.min(Math.max(s.delayMs * 2, this.o.initialMs), this.o.maxMs);
    return s.delayMs;
  }

  /** haproxy exited: the delay before starting it again. */
  afterExit(key: string): number {
    const s = this.get(key);
    const crashLoop = s.startedAt !== undefined && Date.now() - s.startedAt < 2 * this.o.maxMs;
    if (!crashLoop) s.delayMs = 0;
    return this.grow(s);
  }

  /** A start failed: the delay before the next try. */
  afterFailure(key: string): number {
    const s = this.get(key);
    s.failures++;
    return this.grow(s);
  }

  /** Consecutive failed starts so far. */
  failures(key: string): number {
    return this.state.get(key)?.failures ?? 0;
  }

  /** A start succeeded (the delay is kept: a quick exit after it continues the loop). */
  started(key: string): void {
    const s = this.get(key);
    s.failures = 0;
    s.startedAt = Date.now();
  }

  /** Runs `fn` after `ms`, replacing a try already planned. */
  schedule(key: string, ms: number, fn: () => void): void {
    const s = this.get(key);
    if (s.timer) clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      s.timer = undefined;
      fn();
    }, ms);
    // Never keeps the process alive on its own.
    s.timer.unref();
  }

  pending(key: string): boolean {
    return this.state.get(key)?.timer !== undefined;
  }

  /** An explicit start, stop or delete: forget the plan and the history. */
  reset(key: string): void {
    const s = this.state.get(key);
    if (s?.timer) clearTimeout(s.timer);
    this.state.delete(key);
  }

  resetAll(): void {
    for (const key of [...this.state.keys()]) this.reset(key);
  }
}
