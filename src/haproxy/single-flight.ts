// Callers that ask the same question at the same time share one asking.
// GET /1.0/listeners asked every running haproxy for its frontend states
// once per request: 8 concurrent controllers on 50 load balancers made 400
// master CLI round trips at a time. A caller that joins gets an answer whose
// asking began before it called (by less than one round trip), never one
// from an earlier, finished asking.
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    let p = this.inFlight.get(key);
    if (!p) {
      p = work().finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }
}
