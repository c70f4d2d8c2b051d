// The one place where domain errors become Connect errors.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { DomainError, type ErrorKind } from "../errors.js";
import { asDecodeError } from "./decode-errors.js";
import { ErrorInfoSchema } from "../gen/amphora/v1/errors_pb.js";

const CODES: Record<ErrorKind, Code> = {
  invalid: Code.InvalidArgument,
  not_found: Code.NotFound,
  conflict: Code.Aborted,
  precondition: Code.FailedPrecondition,
  exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unimplemented: Code.Unimplemented,
  out_of_range: Code.OutOfRange,
  failed: Code.Internal,
};

export function toConnectError(e: unknown): ConnectError {
  // A request connect-es could not decode (seen here for streaming methods).
  if (e instanceof ConnectError) return asDecodeError(e) ?? e;
  if (e instanceof DomainError) {
    const err = new ConnectError(e.message, CODES[e.kind], undefined, [
      { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { details: e.details, reason: e.reason }) },
    ]);
    return err;
  }
  return new ConnectError(e instanceof Error ? e.message : String(e), Code.Internal);
}
