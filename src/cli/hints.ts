// The driver's hints in the CLI's own words: the driver hands out a stable
// key (AmphoraError.hintKey) and neutral text; here the keys that are about
// a setting name the flag that sets it.
import type { AmphoraError, HintKey } from "../driver/index.js";

const CLI_WORDS: Partial<Record<HintKey, (e: AmphoraError) => string>> = {
  host_unresolvable: (e) => `cannot resolve the host of ${e.agent || "the --agent URL"}: check --agent`,
  host_unreachable: (e) => `cannot reach ${e.agent || "the --agent URL"}: check --agent and the network path`,
  client_cert_rejected: () => "client certificate rejected by the agent: check --ca/--cert (the agent must trust the CA that signed --cert, and --key must match --cert)",
  server_cert_untrusted: () => "the agent's server certificate is not signed by --ca (or has expired): check --ca",
  server_name_mismatch: () => "the agent's certificate does not name this host: pass --server-name <amphora id>",
  key_cert_mismatch: () => "--key is not the private key of --cert: check --cert/--key",
  tls_failed: () => "TLS handshake failed: check --ca/--cert/--key",
  no_answer: (e) => `no answer from ${e.agent || "the agent"}${e.timeoutMs ? ` within ${e.timeoutMs} ms` : ""}: the agent may be busy; raise --timeout or try again`,
  client_refused: () => "the agent refused this client: check --cert/--key",
  not_found: () => "nothing with that id or name on this amphora: check it (`amphora listeners` and `amphora lb list` show what exists)",
  lb_not_found: () => "no load balancer with that id on this amphora: `amphora lb list` shows what exists",
  listeners_not_active: () => "is the load balancer started? see `amphora lb status`",
  listener_config_error: () => "the stored haproxy config does not parse: check it with `amphora config get`",
};

/** The hint to print for an error: the CLI's wording of its key, else the driver's. */
export function cliHint(e: AmphoraError): string {
  return (e.hintKey && CLI_WORDS[e.hintKey]?.(e)) || e.hint;
}
