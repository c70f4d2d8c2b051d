// protovalidate's interceptor, loaded with the first call rather than at
// start: @bufbuild/protovalidate (with its CEL runtime) is the biggest
// module the agent loads, and an agent that has not been called yet needs
// none of it. Every call is still validated: one that arrives while it
// loads waits for it.
import type { Interceptor } from "@connectrpc/connect";

export function lazyValidateInterceptor(): Interceptor {
  let loaded: Interceptor | undefined;
  let loading: Promise<Interceptor> | undefined;
  const load = () => (loading ??= import("@connectrpc/validate").then((m) => (loaded = m.createValidateInterceptor())));
  // Connect applies interceptors per call, so `next` is this call's.
  return (next) => loaded ? loaded(next) : async (req) => (await load())(next)(req as never) as never;
}
