// Domain errors. Domain modules throw these and know nothing of RPC or HTTP;
// src/transport/error-mapping.ts turns them into Connect codes, and the REST
// layer turns those into HTTP statuses.

export type ErrorKind =
  | "invalid" // the caller sent something unusable
  | "not_found"
  | "conflict" // optimistic-concurrency version mismatch
  | "precondition" // the operation does not fit the current state
  | "exhausted" // not enough memory/disk to do it safely
  | "unavailable" // try again later (topology change, busy)
  | "unimplemented"
  | "out_of_range" // asked for something no longer (or not yet) held, e.g. evicted events
  | "failed"; // the underlying program failed

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** Output of the underlying program or other detail for the caller. */
    readonly details = "",
    /** Short machine-readable reason, e.g. CONFIG_INVALID. */
    readonly reason = "",
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const invalid = (msg: string, details = "", reason = "") => new DomainError("invalid", msg, details, reason);
export const notFound = (msg: string, details = "", reason = "") => new DomainError("not_found", msg, details, reason);
export const conflict = (msg: string, details = "", reason = "") => new DomainError("conflict", msg, details, reason);
export const failed = (msg: string, details = "", reason = "") => new DomainError("failed", msg, details, reason);
