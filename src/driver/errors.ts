// Typed errors of the driver. Every failure a caller sees is an AmphoraError:
// a ConnectError (so `code`, `metadata` and `findDetails` work as usual) that
// also carries the agent's ErrorInfo (details, reason), which agent and
// procedure failed, a category a program can branch on and a hint a human can
// act on.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/amphora/v1/errors_pb.js";

/**
 * - `connection`: the agent could not be reached (refused, unresolvable, unreachable, reset).
 * - `tls`: the TLS handshake failed (certificate not trusted, client certificate rejected).
 * - `timeout`: no answer before the deadline.
 * - `canceled`: the caller aborted.
 * - `server`: the agent answered with an error (invalid, not found, failed, unimplemented...).
 */
export type ErrorCategory = "connection" | "tls" | "timeout" | "canceled" | "server";

/** "invalid_argument" style name of a Connect code. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}

const BRAND = Symbol.for("amphora-agent/driver/AmphoraError");

export class AmphoraError extends ConnectError {
  // ConnectError recognises its instances by name (its Symbol.hasInstance),
  // and ConnectError.from() passes instances through unchanged: keeping the
  // name makes `err instanceof ConnectError` true and lets connect-es hand
  // an AmphoraError raised in an interceptor to the caller as is.
  override name = "ConnectError";
  readonly [BRAND] = true;
  /** amphora.v1.ErrorInfo.details: usually the underlying program's output. */
  readonly errorDetails: string;
  /** amphora.v1.ErrorInfo.reason: short machine-readable reason, e.g. CONFIG_INVALID. */
  readonly reason: string;
  readonly category: ErrorCategory;
  /** What to do about it, for humans; "" when there is nothing useful to say. */
  readonly hint: string;
  /** Base URL of the agent, when known. */
  readonly agent: string;
  /** "amphora.v1.Service/Method", when known. */
  readonly procedure: string;

  constructor(
    from: ConnectError,
    o: { agent?: string; procedure?: string; category?: ErrorCategory; hint?: string; timeoutMs?: number } = {},
  ) {
    super(from.rawMessage, from.code, from.metadata, undefined, from.cause ?? from);
    // Keep the incoming details so findDetails() keeps working.
    this.details = from.details;
    const info = from.findDetails(ErrorInfoSchema)[0];
    this.errorDetails = info?.details ?? "";
    this.reason = info?.reason ?? "";
    const prev = from instanceof AmphoraError ? from : undefined;
    this.agent = o.agent || prev?.agent || "";
    this.procedure = o.procedure || prev?.procedure || "";
    const nodeCodes = nodeErrorCodes(from);
    this.category = o.category ?? prev?.category ?? categorize(from, nodeCodes);
    // Re-derived when the agent became known (the hint names it).
    this.hint = o.hint ?? (prev?.hint && prev.agent ? prev.hint : hintFor(this, nodeCodes, o.timeoutMs));
  }

  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
  }

  /** e.g. "unavailable". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** A plain object for JSON output and logs. */
  toJSON(): Record<string, string> {
    const o: Record<string, string> = { code: this.codeName, message: this.rawMessage, category: this.category };
    if (this.errorDetails) o.details = this.errorDetails;
    if (this.reason) o.reason = this.reason;
    if (this.hint) o.hint = this.hint;
    if (this.agent) o.agent = this.agent;
    if (this.procedure) o.procedure = this.procedure;
    return o;
  }
}

/** Turns anything thrown by a call into an AmphoraError (returns AmphoraErrors unchanged). */
export function toAmphoraError(e: unknown, o: { agent?: string; procedure?: string; timeoutMs?: number } = {}): AmphoraError {
  if (e instanceof AmphoraError && (!o.agent || e.agent) && (!o.procedure || e.procedure)) return e;
  return new AmphoraError(ConnectError.from(e), o);
}

/** Node error codes (ECONNREFUSED, ERR_SSL_..., CERT_...) found along the cause chain. */
function nodeErrorCodes(e: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  for (let cur: unknown = e; cur instanceof Error && !seen.has(cur); cur = (cur as { cause?: unknown }).cause) {
    seen.add(cur);
    const c = (cur as { code?: unknown }).code;
    if (typeof c === "string") codes.push(c);
    // OpenSSL alerts are sometimes only in the message text.
    const m = /(ERR_SSL_[A-Z0-9_]+)/.exec(cur.message);
    if (m) codes.push(m[1]!);
  }
  return codes;
}

const TLS_CLIENT_REJECTED = /CLIENT_CERT_REJECTED|ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR|HANDSHAKE_FAILURE)/;
const TLS_SERVER_UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
]);
const CONNECTION = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "ECONNRESET", "EPIPE"]);

function categorize(e: ConnectError, nodeCodes: string[]): ErrorCategory {
  if (nodeCodes.some((c) => TLS_CLIENT_REJECTED.test(c) || TLS_SERVER_UNTRUSTED.has(c) || c === "ERR_TLS_CERT_ALTNAME_INVALID" || c.startsWith("ERR_SSL_") || c.startsWith("ERR_OSSL_"))) return "tls";
  if (nodeCodes.some((c) => CONNECTION.has(c))) return "connection";
  if (e.code === Code.DeadlineExceeded) return "timeout";
  if (e.code === Code.Canceled) return "canceled";
  // Transport-level failures that carry no answer from the agent.
  if (e.code === Code.Unavailable && !e.findDetails(ErrorInfoSchema).length) return "connection";
  return "server";
}

function hintFor(e: AmphoraError, nodeCodes: string[], timeoutMs?: number): string {
  const at = e.agent || "the --agent URL";
  if (nodeCodes.includes("ECONNREFUSED")) return `connection refused: is the agent running at ${at}?`;
  if (nodeCodes.includes("ENOTFOUND") || nodeCodes.includes("EAI_AGAIN")) return `cannot resolve the host of ${at}: check --agent`;
  if (nodeCodes.some((c) => ["EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT"].includes(c))) return `cannot reach ${at}: check --agent and the network path`;
  if (nodeCodes.some((c) => TLS_CLIENT_REJECTED.test(c))) return "client certificate rejected by the agent: check --ca/--cert (the agent must trust the CA that signed --cert, and --key must match --cert)";
  if (nodeCodes.some((c) => TLS_SERVER_UNTRUSTED.has(c))) return "the agent's server certificate is not signed by --ca (or has expired): check --ca";
  if (nodeCodes.includes("ERR_TLS_CERT_ALTNAME_INVALID")) return "the agent's certificate does not name this host: pass --server-name <amphora id>";
  if (nodeCodes.includes("ERR_OSSL_X509_KEY_VALUES_MISMATCH")) return "--key is not the private key of --cert: check --cert/--key";
  if (nodeCodes.some((c) => c.startsWith("ERR_SSL_") || c.startsWith("ERR_OSSL_"))) return "TLS handshake failed: check --ca/--cert/--key";
  if (nodeCodes.includes("ECONNRESET") || nodeCodes.includes("EPIPE")) return `the connection to ${at} was reset: the agent may be restarting; try again`;
  switch (e.code) {
    case Code.DeadlineExceeded:
      return `no answer from ${at}${timeoutMs ? ` within ${timeoutMs} ms` : ""}: the agent may be busy; raise --timeout or try again`;
    case Code.Unimplemented:
      return `the agent at ${at} does not implement this operation (older agent, or not built yet)`;
    case Code.Unavailable:
      return e.category === "connection" ? `cannot talk to ${at}: is the agent running?` : "the agent is busy (e.g. a topology change): try again later";
    case Code.Aborted:
      return "the stored state changed since you read it: read it again and retry";
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return "the agent refused this client: check --cert/--key";
    case Code.ResourceExhausted:
      return "the amphora lacks memory or disk for this operation";
    case Code.NotFound:
      return "nothing with that id or name on this amphora: check it (listeners and lb list show what exists)";
    case Code.InvalidArgument:
      return `the agent refused the request as invalid: fix what the ${e.errorDetails ? "details name" : "message names"} and send it again`;
    case Code.FailedPrecondition:
      return "the operation does not fit the current state (e.g. nothing uploaded yet): do the missing step first";
    case Code.Internal:
    case Code.Unknown:
      return e.errorDetails ? "the operation failed on the amphora: the details say why" : "";
    default:
      return "";
  }
}

/**
 * Explains a failed call by the connection's socket when the agent gave no
 * answer: with TLS 1.3 a rejected client certificate shows up in connect-es
 * only as a canceled or reset stream, while the socket saw what happened.
 * Sits inside the retry interceptor, so a rejection is not retried.
 */
export function socketErrorInterceptor(
  /** The last error of the connection's socket if it happened at or after `since`. */
  socketError: (since: number) => Error | undefined,
): Interceptor {
  return (next) => async (req) => {
    const started = Date.now();
    try {
      return await next(req);
    } catch (e) {
      const ce = ConnectError.from(e);
      const sockErr = req.signal.aborted || ce.findDetails(ErrorInfoSchema).length ? undefined : socketError(started);
      if (!sockErr || ![Code.Canceled, Code.Aborted, Code.Internal, Code.Unknown, Code.Unavailable].includes(ce.code)) throw e;
      const rejected = nodeErrorCodes(sockErr).some((c) => TLS_CLIENT_REJECTED.test(c));
      throw new ConnectError(sockErr.message, rejected ? Code.Unauthenticated : Code.Unavailable, undefined, undefined, sockErr);
    }
  };
}

/**
 * Converts every error of a call, including errors raised while reading a
 * response stream, into an AmphoraError naming the agent and the procedure.
 * Must be the outermost interceptor.
 */
export function errorInterceptor(agent: string, timeoutMs?: number): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const wrap = (e: unknown) => toAmphoraError(e, { agent, procedure, timeoutMs });
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (e) {
            throw wrap(e);
          }
        })(),
      };
    } catch (e) {
      throw wrap(e);
    }
  };
}
