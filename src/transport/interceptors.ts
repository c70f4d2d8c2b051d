// Interceptors applied to every RPC, whichever protocol (or the REST layer)
// carried it: one log line per call, domain errors mapped to Connect codes.
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { callLineWriter, type CallLine, type Logger } from "../log.js";
import { toConnectError } from "./error-mapping.js";
import { tapStream } from "./stream-tap.js";
import { ErrorInfoSchema } from "../gen/amphora/v1/errors_pb.js";
import { hidesHostPaths } from "./internal-errors.js";

/** Subject of the verified client certificate of the connection. */
export const peerSubjectKey = createContextKey<string>("", { description: "peer certificate subject" });
/** "rest" when the REST layer made the call; else read from the content type. */
export const protocolKey = createContextKey<string>("", { description: "protocol that carried the call" });

export function protocolOf(contentType: string | null): string {
  const ct = contentType ?? "";
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  if (ct.includes("proto")) return "connect+proto";
  return "connect+json";
}

export type CallObserver = (method: string, code: string, seconds: number) => void;

/**
 * Maps errors and writes one log line per RPC (for streams, when they end).
 * The line has the full error (of a server fault or unavailable also its
 * ErrorInfo details, which the answer may shorten); the caller gets `answer(error)`
 * (the agent passes answerableError: no host paths).
 */
export function loggingInterceptor(logger: Logger, observe?: CallObserver, answer: (err: ConnectError) => ConnectError = (e) => e): Interceptor {
  // The call line has fixed fields (no secret can be among them), so it
  // skips the redaction pass of the root logger (~4 µs per line).
  const rpcLog = logger.child({}, { redact: [] });
  const callLine = callLineWriter(rpcLog, "rpc");
  // "<service>/<method>", made once per method rather than per call.
  const names = new WeakMap<object, string>();
  const nameOf = (req: { service: { typeName: string }; method: { name: string } }) => {
    let n = names.get(req.method);
    if (n === undefined) names.set(req.method, (n = `${req.service.typeName}/${req.method.name}`));
    return n;
  };
  // One function for every end of a call, no closures per call: this runs
  // for every call of every protocol, and what it allocates is paid again
  // in scavenges under load (a closure pair per call was ~2 KB).
  const done = (req: Parameters<Parameters<Interceptor>[0]>[0], started: number, err?: ConnectError) => {
    const method = nameOf(req);
    const f: CallLine = {
      method,
      protocol: req.contextValues.get(protocolKey) || protocolOf(req.header.get("content-type")),
      peer: req.contextValues.get(peerSubjectKey),
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    const code = err ? Code[err.code] : "OK";
    observe?.(method, code, f.ms / 1000);
    if (!err) callLine(f, "ok");
    else if (err.code === Code.Canceled) callLine(f, "canceled");
    else {
      const details = hidesHostPaths(err.code) ? err.findDetails(ErrorInfoSchema)[0]?.details || undefined : undefined;
      rpcLog[err.code === Code.Internal ? "error" : "warn"]({ ...f, outcome: code, err: err.rawMessage, details }, "rpc");
    }
  };
  return (next) => async (req) => {
    const started = performance.now();
    let res;
    try {
      res = await next(req);
    } catch (e) {
      const err = toConnectError(e);
      done(req, started, err);
      throw answer(err);
    }
    if (!res.stream) {
      done(req, started);
      return res;
    }
    return {
      ...res,
      message: tapStream(res.message, {
        onEnd: () => done(req, started),
        onError: (e) => {
          const err = toConnectError(e);
          done(req, started, err);
          return answer(err);
        },
      }),
    };
  };
}
