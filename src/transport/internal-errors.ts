// What a caller is told of a server fault (internal, unknown, data_loss) or
// of an unavailable agent-side resource.
// Such errors often carry a message written for the operator: an fs error
// ("EISDIR: illegal operation on a directory, unlink '/var/lib/amphora-agent/
// certs/...'"), a program's output naming its files. The controller needs to
// know what failed, not how the host is laid out, so the answer shows paths
// under the state directory relative to it ("<state>/certs/...") and any
// other absolute path as "<path>". The log line keeps the full text
// (the logging interceptor logs the error before this rewrites it).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { resolve, sep } from "node:path";
import { ErrorInfoSchema } from "../gen/amphora/v1/errors_pb.js";

/**
 * Codes whose text describes the agent's own side, not what the caller sent:
 * server faults, and unavailable (e.g. "haproxy master CLI unreachable" with
 * the socket's path). Other codes name the caller's input and stay as they are.
 */
const AGENT_SIDE = new Set([Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable]);

/** Whether an answer with this code has its host paths hidden (and its log line carries the full details). */
export const hidesHostPaths = (code: Code): boolean => AGENT_SIDE.has(code);

/**
 * An absolute path in free text: a "/" that does not continue a word, a
 * number ("192.0.2.0/24"), a relative path ("lb/haproxy.cfg") or a URL
 * ("https://"), up to whitespace, a quote, a bracket or a ":" (haproxy writes
 * "file:line"). A lone "/" is no path.
 */
const ABSOLUTE_PATH = /(?<![\w.~:/\\-])\/[^\s'"`:,;()[\]{}<>]+/g;

/** `text` with absolute paths hidden: under `stateDir` as "<state>/rel", others as "<path>". */
export function hideHostPaths(text: string, stateDir: string): string {
  if (!text.includes("/")) return text;
  const root = resolve(stateDir);
  return text.replace(ABSOLUTE_PATH, (p) => {
    // Trailing sentence punctuation is not part of the path.
    const tail = /[.!?]+$/.exec(p)?.[0] ?? "";
    const path = tail ? p.slice(0, -tail.length) : p;
    if (!path) return p;
    const abs = resolve(path);
    if (abs === root) return `<state>${tail}`;
    if (abs.startsWith(root + sep)) return `<state>/${abs.slice(root.length + 1)}${tail}`;
    return `<path>${tail}`;
  });
}

/**
 * The error as the caller gets it: a server fault (or unavailable) with its message and
 * ErrorInfo details passed through hideHostPaths (reason and metadata kept);
 * any other error unchanged (domain errors name only what the caller sent).
 */
export function answerableError(err: ConnectError, stateDir: string): ConnectError {
  if (!hidesHostPaths(err.code)) return err;
  const message = hideHostPaths(err.rawMessage, stateDir);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const details = info ? hideHostPaths(info.details, stateDir) : "";
  if (message === err.rawMessage && (!info || details === info.details)) return err;
  const out = new ConnectError(
    message,
    err.code,
    err.metadata,
    info ? [{ desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { details, reason: info.reason }) }] : undefined,
  );
  return out;
}
