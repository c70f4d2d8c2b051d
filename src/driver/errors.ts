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
  /** What to do about it, as a stable key ("" when there is nothing useful to say); see HintKey. */
  readonly hintKey: HintKey | "";
  /** The hint in words for humans, naming no program's flags (see hintText); "" when there is none. */
  readonly hint: string;
  /** The deadline the call had, when it had one (ms). */
  readonly timeoutMs?: number;
  /** Base URL of the agent, when known. */
  readonly agent: string;
  /** "amphora.v1.Service/Method", when known. */
  readonly procedure: string;

  constructor(
    from: ConnectError,
    o: { agent?: string; procedure?: string; category?: ErrorCategory; hintKey?: HintKey; timeoutMs?: number } = {},
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
    this.timeoutMs = o.timeoutMs ?? prev?.timeoutMs;
    this.hintKey = o.hintKey ?? (prev?.hintKey || hintKeyFor(this, nodeCodes));
    // Worded again here: the agent may have become known (the hint names it).
    this.hint = hintText(this.hintKey, this);
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
    if (this.hintKey) o.hint_key = this.hintKey;
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

/**
 * What a caller can do about an error, as a stable key. The driver words
 * each one for any program (`hint`); an application with its own knobs
 * (the CLI's --ca, --timeout...) words them its own way from the key.
 */
export type HintKey =
  | "connection_refused"
  | "host_unresolvable"
  | "host_unreachable"
  | "client_cert_rejected"
  | "server_cert_untrusted"
  | "server_name_mismatch"
  | "key_cert_mismatch"
  | "tls_failed"
  | "connection_reset"
  | "no_answer"
  | "unimplemented"
  | "agent_unreachable"
  | "agent_busy"
  | "state_changed"
  | "client_refused"
  | "resources_exhausted"
  | "not_found"
  | "invalid_request"
  | "wrong_state"
  | "failed_on_amphora"
  | "lb_not_found"
  | "no_listeners_in_config"
  | "listeners_not_active"
  | "listener_config_error";

/** Neutral wording of a hint key: names no flag or option of any program. */
export function hintText(key: HintKey | "", e: { agent: string; timeoutMs?: number; errorDetails?: string }): string {
  const at = e.agent || "the agent's URL";
  switch (key) {
    case "connection_refused": return `connection refused: is the agent running at ${at}?`;
    case "host_unresolvable": return `cannot resolve the host of ${at}: check the agent's address`;
    case "host_unreachable": return `cannot reach ${at}: check the agent's address and the network path`;
    case "client_cert_rejected": return "client certificate rejected by the agent: check the CA and the client certificate (the agent must trust the CA that signed the client certificate, and the key must match it)";
    case "server_cert_untrusted": return "the agent's server certificate is not signed by the CA given (or has expired): check the CA";
    case "server_name_mismatch": return "the agent's certificate does not name this host: check against the amphora id (serverName)";
    case "key_cert_mismatch": return "the private key does not belong to the client certificate";
    case "tls_failed": return "TLS handshake failed: check the CA, the client certificate and its key";
    case "connection_reset": return `the connection to ${at} was reset: the agent may be restarting; try again`;
    case "no_answer": return `no answer from ${at}${e.timeoutMs ? ` within ${e.timeoutMs} ms` : ""}: the agent may be busy; allow more time or try again`;
    case "unimplemented": return `the agent at ${at} does not implement this operation (older agent, or not built yet)`;
    case "agent_unreachable": return `cannot talk to ${at}: is the agent running?`;
    case "agent_busy": return "the agent is busy (e.g. a topology change): try again later";
    case "state_changed": return "the stored state changed since you read it: read it again and retry";
    case "client_refused": return "the agent refused this client: check the client certificate and key";
    case "resources_exhausted": return "the amphora lacks memory or disk for this operation";
    case "not_found": return "nothing with that id or name on this amphora: check it (the listeners and load balancers it has say what exists)";
    case "invalid_request": return `the agent refused the request as invalid: fix what the ${e.errorDetails ? "details name" : "message names"} and send it again`;
    case "wrong_state": return "the operation does not fit the current state (e.g. nothing uploaded yet): do the missing step first";
    case "failed_on_amphora": return "the operation failed on the amphora: the details say why";
    case "lb_not_found": return "no load balancer with that id on this amphora: check the id (list the load balancers)";
    case "no_listeners_in_config": return "listeners are the config's frontends, named by listener id: store a config whose frontends carry the listener ids";
    case "listeners_not_active": return "is the load balancer started? its status says";
    case "listener_config_error": return "the stored haproxy config does not parse: check it";
    default: return "";
  }
}

function hintKeyFor(e: AmphoraError, nodeCodes: string[]): HintKey | "" {
  if (nodeCodes.includes("ECONNREFUSED")) return "connection_refused";
  if (nodeCodes.includes("ENOTFOUND") || nodeCodes.includes("EAI_AGAIN")) return "host_unresolvable";
  if (nodeCodes.some((c) => ["EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT"].includes(c))) return "host_unreachable";
  if (nodeCodes.some((c) => TLS_CLIENT_REJECTED.test(c))) return "client_cert_rejected";
  if (nodeCodes.some((c) => TLS_SERVER_UNTRUSTED.has(c))) return "server_cert_untrusted";
  if (nodeCodes.includes("ERR_TLS_CERT_ALTNAME_INVALID")) return "server_name_mismatch";
  if (nodeCodes.includes("ERR_OSSL_X509_KEY_VALUES_MISMATCH")) return "key_cert_mismatch";
  if (nodeCodes.some((c) => c.startsWith("ERR_SSL_") || c.startsWith("ERR_OSSL_"))) return "tls_failed";
  if (nodeCodes.includes("ECONNRESET") || nodeCodes.includes("EPIPE")) return "connection_reset";
  switch (e.code) {
    case Code.DeadlineExceeded: return "no_answer";
    case Code.Unimplemented: return "unimplemented";
    case Code.Unavailable: return e.category === "connection" ? "agent_unreachable" : "agent_busy";
    case Code.Aborted: return "state_changed";
    case Code.Unauthenticated:
    case Code.PermissionDenied: return "client_refused";
    case Code.ResourceExhausted: return "resources_exhausted";
    case Code.NotFound: return "not_found";
    case Code.InvalidArgument: return "invalid_request";
    case Code.FailedPrecondition: return "wrong_state";
    case Code.Internal:
    case Code.Unknown: return e.errorDetails ? "failed_on_amphora" : "";
    default: return "";
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
