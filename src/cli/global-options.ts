// Options every command takes: where the agent is, the credentials, the
// wire protocol, output format. Their values are resolved in settings.ts.
import type { OptSpec } from "./command.js";

export const GLOBAL_OPTIONS: Record<string, OptSpec> = {
  agent: { type: "string", multiple: true, short: "a", value: "URL", help: "agent URL, e.g. https://192.0.2.10:9443 (repeat for several amphorae) [AMPHORA_AGENT, comma-separated]" },
  ca: { type: "string", value: "FILE", complete: "file", help: "CA that signed the agent's certificate [AMPHORA_CA]" },
  cert: { type: "string", value: "FILE", complete: "file", help: "client certificate [AMPHORA_CERT]" },
  key: { type: "string", value: "FILE", complete: "file", help: "client private key [AMPHORA_KEY]" },
  "dev-state": { type: "string", value: "DIR", complete: "dir", help: "use the dev PKI of an agent run with --dev --state-dir DIR [AMPHORA_DEV_STATE]" },
  "server-name": { type: "string", value: "NAME", help: "name to check the agent's certificate against, e.g. the amphora id [AMPHORA_SERVER_NAME]" },
  protocol: { type: "string", value: "P", complete: ["connect", "grpc", "grpcweb"], help: "connect (default), grpc or grpcweb (also grpc-web) [AMPHORA_PROTOCOL]" },
  timeout: { type: "string", value: "MS", help: "deadline per call, retries included (default: 10000 reads, 30000 changes, 60000 lb start/stop/reload/delete) [AMPHORA_TIMEOUT]" },
  concurrency: { type: "string", value: "N", help: "with several agents: how many at once (default 8)" },
  "cli-config": { type: "string", value: "FILE", complete: "file", help: "CLI config file [AMPHORA_CONFIG]" },
  profile: { type: "string", value: "NAME", help: "profile of the config file [AMPHORA_PROFILE]" },
  json: { type: "boolean", help: "machine-readable JSON output (the Protobuf JSON mapping of the response)" },
  verbose: { type: "boolean", short: "v", help: "trace every request on stderr: method, URL, protocol, outcome, duration" },
  "no-color": { type: "boolean", help: "no colours (also NO_COLOR)" },
  help: { type: "boolean", short: "h", help: "show help" },
  version: { type: "boolean", help: "print the CLI version" },
};
