// `--verbose`: one line per request attempt on stderr, as grpcurl -v or
// kubectl -v show them: HTTP method, URL (which names the procedure),
// protocol, then the outcome (ok or the Connect code) and how long it took.
// Never headers, bodies or credentials. Sits inside the driver's retry
// handling, so every retry is its own line.
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeName } from "../driver/index.js";

export function traceInterceptor(write: (line: string) => void, protocol: string, now: () => number = () => performance.now()): Interceptor {
  return (next) => async (req) => {
    const t0 = now();
    const took = () => `${Math.round(now() - t0)} ms`;
    const kind = req.stream ? "stream" : "unary";
    write(`> ${req.requestMethod} ${req.url} (${protocol}, ${kind})`);
    const fail = (e: unknown, what: string) => {
      const ce = ConnectError.from(e);
      write(`< ${codeName(ce.code)}${what} ${took()}: ${ce.rawMessage}`);
    };
    let res;
    try {
      res = await next(req);
    } catch (e) {
      fail(e, "");
      throw e;
    }
    if (!res.stream) {
      write(`< ok ${took()}`);
      return res;
    }
    write(`< stream open ${took()}`);
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let n = 0;
        try {
          for await (const m of messages) {
            n++;
            yield m;
          }
          write(`< stream end, ${n} messages ${took()}`);
        } catch (e) {
          fail(e, ` (stream, after ${n} messages)`);
          throw e;
        }
      })(),
    };
  };
}
