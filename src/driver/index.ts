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
export { AmphoraError, toAmphoraError, codeName, errorInterceptor, type ErrorCategory } from "./errors.js";
export { retryInterceptor, type RetryOptions } from "./retry.js";
export { backoffDelay, sleep, type BackoffOptions } from "./backoff.js";
export {
  applyLoadBalancer,
  deleteLoadBalancer,
  waitForListenersActive,
  type ApplyLoadBalancerInput,
  type ApplyLoadBalancerResult,
  type CertificateFile,
  type WaitForListenersInput,
} from "./flows.js";
export { followStats, isKeepalive, type FollowStatsOptions } from "./follow-stats.js";
export { fanOut, type FanOutOptions, type FanOutResult } from "./fan-out.js";
// The generated messages and enums, so callers need one import.
export * from "../gen/amphora/v1/system_pb.js";
export * from "../gen/amphora/v1/load_balancer_pb.js";
export * from "../gen/amphora/v1/certificate_pb.js";
export * from "../gen/amphora/v1/network_pb.js";
export * from "../gen/amphora/v1/keepalived_pb.js";
export * from "../gen/amphora/v1/stats_pb.js";
export * from "../gen/amphora/v1/errors_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
