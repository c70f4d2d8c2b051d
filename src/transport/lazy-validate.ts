// protovalidate's interceptor, loaded after the agent listens rather than
// before: @bufbuild/protovalidate (with its CEL runtime) is the biggest
// module the agent loads, and the port can open without it (startAgent
// loads it right after, and returns once it has). Every call is validated:
// one that arrives while it loads waits for it.
import type { Interceptor } from "@connectrpc/connect";

let loaded: Interceptor | undefined;
let loading: Promise<Interceptor> | undefined;
const load = () => (loading ??= import("@connectrpc/validate").then((m) => (loaded = m.createValidateInterceptor())));

/** Loads the validator now; resolves when it is loaded (never rejects). */
export function preloadValidation(): Promise<void> {
  return load().then(
    () => undefined,
    () => {
      loading = undefined; // the first call tries again, and fails loudly
    },
  );
}

export function lazyValidateInterceptor(): Interceptor {
  // Connect applies interceptors per call, so `next` is this call's.
  return (next) => loaded ? loaded(next) : async (req) => (await load())(next)(req as never) as never;
}
