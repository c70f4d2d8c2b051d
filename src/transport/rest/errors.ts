// Connect errors as the REST answers Octavia controllers understand:
// an HTTP status and a JSON body {"message", "details"}.
import { Code, ConnectError } from "@connectrpc/connect";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ErrorInfoSchema } from "../../gen/amphora/v1/errors_pb.js";

// The controller's driver (octavia/amphorae/drivers/haproxy/exceptions.py)
// raises on 401, 403, 404, 405, 409, 500 and 503 and treats any other status
// it does not check for as success, so every error that means "the operation
// did not happen" must land on one of those (or on 400 where a route lists it).
// - failed_precondition -> 409: the request conflicts with the current
//   state (e.g. an action the load balancer's state does not allow); 400
//   would read as "your request is malformed" and some driver calls ignore it.
// - resource_exhausted -> 503: not enough memory or disk to do it safely now;
//   the driver maps 503 to ServiceUnavailable, while it would not notice 507.
// - deadline_exceeded -> 503 and unimplemented -> 500: 504 and 501 would read
//   as success to it.
// - canceled -> 499: the client has gone; nobody reads it.
// The REST layer's own 413 (a body over the limit, which issue 5 asks for)
// is the one answer outside that set; no controller renders files that big.
export const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 503,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 503,
  [Code.FailedPrecondition]: 409,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 500,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export interface RestError {
  status: number;
  message: string;
  details: string;
}

/**
 * Validation failures (protovalidate violations attached) answer with the
 * route's invalid_message and the violation text; domain errors (ErrorInfo
 * attached by src/transport/error-mapping.ts) with their message and details.
 * A route may answer invalid_argument and failed_precondition with a status
 * of its own (its invalid_status / precondition_status: Octavia's 500s).
 */
export function restError(e: unknown, invalidMessage: string, invalidStatus = 400, preconditionStatus = 409): RestError {
  const err = ConnectError.from(e);
  const status =
    err.code === Code.InvalidArgument ? invalidStatus
    : err.code === Code.FailedPrecondition ? preconditionStatus
    : (HTTP_STATUS[err.code] ?? 500);
  const info = err.findDetails(ErrorInfoSchema)[0];
  if (info) return { status, message: err.rawMessage, details: info.details };
  if (err.code === Code.InvalidArgument && err.findDetails(ViolationsSchema).length) {
    return { status, message: invalidMessage, details: err.rawMessage };
  }
  return { status, message: err.rawMessage, details: "" };
}
