// Unary calls in progress, over every protocol and REST. The transport's
// bound on requests in flight counts a stream until it closes, but a call's
// work goes on after its client cancelled it (HTTP/2 rapid reset: open a
// stream, reset it, repeat): only the call itself knows when its work
// ended. Beyond the bound a call is refused at once with resource_exhausted
// (REST 503), which a client retries. Streaming calls (WatchStats) are
// bounded by the transport's request bound instead: they last by design.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export function callLimitInterceptor(max: number, onRefuse?: () => void): Interceptor {
  let inProgress = 0;
  // Shared by every call (no closure or async frame per call).
  const release = () => {
    inProgress--;
  };
  return (next) => (req) => {
    if (req.stream) return next(req);
    if (inProgress >= max) {
      onRefuse?.();
      return Promise.reject(new ConnectError(`more than ${max} calls in progress; retry later`, Code.ResourceExhausted));
    }
    inProgress++;
    let p;
    try {
      p = next(req);
    } catch (e) {
      inProgress--;
      throw e;
    }
    p.then(release, release);
    return p;
  };
}
