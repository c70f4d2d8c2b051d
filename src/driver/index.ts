// The driver's public surface (package export "amphora-agent/driver").
export {
  createAmphoraClient,
  defaultDeadlineMs,
  devStateCredentialPaths,
  readCredentials,
  DEFAULT_TIMEOUT_MS,
  type AmphoraClient,
  type AmphoraClientOptions,
  type AmphoraProtocol,
  type CredentialPaths,
} from "./client.js";
export { AmphoraError, toAmphoraError, codeName, errorInterceptor, hintText, type ErrorCategory, type HintKey } from "./errors.js";
export { retryInterceptor, type RetryOptions } from "./retry.js";
export { backoffDelay, sleep, type BackoffOptions } from "./backoff.js";
export {
  applyLoadBalancer,
  deleteLoadBalancer,
  waitForListenersActive,
  type ApplyLoadBalancerInput,
  type ApplyLoadBalancerResult,
  type CertificateFile,
  type DeleteLoadBalancerInput,
  type WaitForListenersInput,
} from "./flows.js";
export { followStats, isKeepalive, type FollowStatsOptions } from "./follow-stats.js";
export { fanOut, type FanOutOptions, type FanOutResult } from "./fan-out.js";
export { followEvents, type FollowEventsOptions, type FollowedEvent, type EventPosition } from "./follow-events.js";
// The generated messages and enums, so callers need one import.
export * from "../gen/amphora/v1/system_pb.js";
export * from "../gen/amphora/v1/load_balancer_pb.js";
export * from "../gen/amphora/v1/certificate_pb.js";
export * from "../gen/amphora/v1/network_pb.js";
export * from "../gen/amphora/v1/keepalived_pb.js";
export * from "../gen/amphora/v1/stats_pb.js";
export * from "../gen/amphora/v1/events_pb.js";
export * from "../gen/amphora/v1/errors_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
// Responses hold 64-bit fields as bigint, which JSON.stringify refuses:
// toJson/toJsonString write the Protobuf JSON mapping (64-bit as strings),
// e.g. toJsonString(GetStatsResponseSchema, res). create/fromJson build
// requests from plain objects and JSON.
export { create, fromJson, toJson, toJsonString, type JsonValue, type JsonWriteOptions } from "@bufbuild/protobuf";
