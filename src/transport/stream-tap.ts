// A stream of messages passed through with something done on the way: at
// its end, on its failure, or to each item. An async generator wrapper
// (`yield*`) costs several promise steps per item; a WatchStats tick sends
// one message to each of 1,000 streams through two such wrappers (the
// call's log line, the decode-error rewrite), so this one passes each item
// with a single promise reaction.

export interface Tap<T> {
  /** Called once when the source ends normally (not when the consumer stops early). */
  onEnd?(): void;
  /** Called once when the source fails; returns what the consumer gets thrown instead. */
  onError?(e: unknown): unknown;
  /** Applied to each item (an exception reaches the consumer). */
  map?(item: T): T;
}

export function tapStream<T>(source: AsyncIterable<T>, tap: Tap<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      let finished = false;
      const step = (r: IteratorResult<T>): IteratorResult<T> => {
        if (r.done) {
          if (!finished) {
            finished = true;
            tap.onEnd?.();
          }
          return r;
        }
        return tap.map ? { done: false, value: tap.map(r.value) } : r;
      };
      const fail = (e: unknown): never => {
        finished = true;
        throw tap.onError ? tap.onError(e) : e;
      };
      return {
        next: () => (finished ? Promise.resolve({ done: true, value: undefined }) : it.next().then(step, fail)),
        // The consumer stops early: the source is told, nothing is reported (as with `yield*`).
        return: (v?: unknown) => {
          finished = true;
          return it.return ? it.return(v) : Promise.resolve({ done: true as const, value: v as never });
        },
        throw: (e?: unknown) => {
          finished = true;
          return it.throw ? it.throw(e) : Promise.reject(e);
        },
      };
    },
  };
}
