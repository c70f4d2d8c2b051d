// Lets a long synchronous job share the event loop: `step()` between units
// of work yields to other callbacks (timers, sockets, other requests) once
// `sliceMs` of uninterrupted work has passed, so a big but linear job (1 MiB
// of certificates to parse) delays nobody by more than one slice.
import { setImmediate as nextTurn } from "node:timers/promises";

export class Pacer {
  private since = performance.now();

  constructor(private readonly sliceMs = 8) {}

  /** Yields when this job has held the event loop for a slice; otherwise returns at once. */
  async step(): Promise<void> {
    if (performance.now() - this.since < this.sliceMs) return;
    await nextTurn();
    this.since = performance.now();
  }
}
