// The multi-call sequences a controller runs against one amphora, each as
// one function: apply a load balancer, delete it, wait for its listeners.
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { LoadBalancerAction, type Listener, type LoadBalancerStatus } from "../gen/amphora/v1/load_balancer_pb.js";
import { AmphoraError, toAmphoraError } from "./errors.js";
import type { AmphoraClient } from "./client.js";
import { sleep } from "./backoff.js";

export interface CertificateFile {
  /** File name under the load balancer's certificate directory, e.g. "<listener_id>.pem". */
  filename: string;
  /** Key, certificate and chain in PEM. */
  pem: string;
}

export interface ApplyLoadBalancerInput {
  amphoraId: string;
  lbId: string;
  /** The haproxy.cfg text. */
  config: string;
  certificates?: CertificateFile[];
  /** Optimistic concurrency: fail with `aborted` unless the stored config has this md5. */
  expectedMd5?: string;
  signal?: AbortSignal;
}

export interface ApplyLoadBalancerResult {
  certificates: { filename: string; md5: string; uploaded: boolean }[];
  configMd5: string;
  configVersion: bigint;
  /**
   * What the agent did to haproxy after the config was stored: a reload, or
   * a start when haproxy did not run (a reload of a stopped load balancer
   * starts it, as in Octavia). Read from the agent's answer (`details`).
   */
  action: "reload" | "start";
  /** The agent's words about it, e.g. "haproxy reloaded with config version 3". */
  details: string;
  /** The config version haproxy serves afterwards (0 if the agent does not say). */
  servedVersion: bigint;
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

/**
 * Uploads the certificates (skipping those whose md5 on the amphora already
 * matches), then the config, then reloads haproxy (which starts it if it
 * does not run). The reload carries the md5 of the config just stored, so
 * a config another controller stored in between is not put in service by
 * this call: it fails with `aborted` instead. Stops at the first failure
 * with an AmphoraError; nothing already done is undone (each step keeps the
 * agent's previous good state on failure).
 */
export async function applyLoadBalancer(client: AmphoraClient, input: ApplyLoadBalancerInput): Promise<ApplyLoadBalancerResult> {
  const { lbId, signal } = input;
  const certificates: ApplyLoadBalancerResult["certificates"] = [];
  for (const c of input.certificates ?? []) {
    const want = md5(c.pem);
    let have = "";
    try {
      have = (await client.certificate.getCertificateMd5({ lbId, filename: c.filename }, { signal })).md5sum;
    } catch (e) {
      if (ConnectError.from(e).code !== Code.NotFound) throw e;
    }
    if (have === want) {
      certificates.push({ filename: c.filename, md5: have, uploaded: false });
      continue;
    }
    const put = await client.certificate.putCertificate({ lbId, filename: c.filename, pem: c.pem }, { signal });
    certificates.push({ filename: c.filename, md5: put.md5sum || want, uploaded: true });
  }
  const stored = await client.loadBalancer.putConfig(
    { amphoraId: input.amphoraId, lbId, config: input.config, expectedMd5: input.expectedMd5 },
    { signal },
  );
  const res = await client.loadBalancer.controlLoadBalancer(
    // Octavia-era agents answer PUT /config without an md5: no guard then.
    { lbId, action: LoadBalancerAction.RELOAD, expectedMd5: stored.md5 || undefined },
    { signal },
  );
  // "haproxy started with config version N" when it was not running.
  const action = /\bstart(ed)?\b/i.test(res.details) ? "start" : "reload";
  return { certificates, configMd5: stored.md5, configVersion: stored.version, action, details: res.details, servedVersion: res.version };
}

export interface DeleteLoadBalancerInput {
  lbId: string;
  signal?: AbortSignal;
}

/** Stops haproxy and removes config, certificates and sockets; succeeds for an unknown load balancer. */
export async function deleteLoadBalancer(client: AmphoraClient, input: DeleteLoadBalancerInput): Promise<void>;
/** @deprecated pass `{ lbId, signal }`, as the other flows take their input. */
export async function deleteLoadBalancer(client: AmphoraClient, lbId: string, o?: { signal?: AbortSignal }): Promise<void>;
export async function deleteLoadBalancer(client: AmphoraClient, input: DeleteLoadBalancerInput | string, o: { signal?: AbortSignal } = {}): Promise<void> {
  const { lbId, signal } = typeof input === "string" ? { lbId: input, signal: o.signal } : input;
  await client.loadBalancer.deleteLoadBalancer({ lbId }, { signal });
}

export interface WaitForListenersInput {
  /** Wait for every listener of this load balancer (at least one must exist). */
  lbId?: string;
  /** Wait for exactly these listeners. */
  listenerIds?: string[];
  /** Overall deadline (default 30 s). */
  timeoutMs?: number;
  /** Poll interval (default 250 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * What the load balancer's stored config says about its listeners, before
 * any waiting: an unknown load balancer fails at once with `not_found`, and
 * one whose config has no listener to wait for (listeners are the config's
 * frontends, named by listener id) or lacks a listener asked for fails with
 * `failed_precondition` instead of waiting for listeners that never appear.
 * Agents without GetLoadBalancerStatus (Octavia's) skip the check.
 */
async function checkListenersExpected(client: AmphoraClient, input: WaitForListenersInput): Promise<void> {
  const lbId = input.lbId!;
  let status: LoadBalancerStatus | undefined;
  try {
    status = (await client.loadBalancer.getLoadBalancerStatus({ lbId }, { signal: input.signal })).status;
  } catch (e) {
    const err = toAmphoraError(e, { agent: client.baseUrl });
    if (err.code === Code.Unimplemented) return;
    if (err.code === Code.NotFound) {
      throw new AmphoraError(new ConnectError(`load balancer ${lbId} is not on this amphora: ${err.rawMessage}`, Code.NotFound, undefined, undefined, err), {
        agent: client.baseUrl, procedure: "waitForListenersActive", category: "server", hintKey: "lb_not_found",
      });
    }
    throw err;
  }
  if (!status) return;
  const known = status.listenerIds;
  const absent = (input.listenerIds ?? []).filter((id) => !known.includes(id));
  if (known.length && !absent.length) return;
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const named = known.length ? `its frontends are ${known.join(", ")}` : "it has no frontend sections";
  const notIds = known.filter((id) => !uuid.test(id));
  const why = !known.length
    ? `the stored config of load balancer ${lbId} names no listener (${named}): nothing to wait for`
    : `listener(s) ${absent.join(", ")} not in the stored config of load balancer ${lbId} (${named}${notIds.length ? `; ${notIds.join(", ")} ${notIds.length > 1 ? "are" : "is"} not a listener id` : ""}): they would never appear`;
  throw new AmphoraError(new ConnectError(why, Code.FailedPrecondition), {
    agent: client.baseUrl, procedure: "waitForListenersActive", category: "server", hintKey: "no_listeners_in_config",
  });
}

/**
 * Polls ListListeners until every wanted listener is ACTIVE and returns
 * them. With `lbId`, first checks the load balancer exists and its config
 * has the listeners (see checkListenersExpected). Fails at once when one is
 * in ERROR (its config does not parse), and with `deadline_exceeded` naming
 * the laggards when time runs out.
 */
export async function waitForListenersActive(client: AmphoraClient, input: WaitForListenersInput): Promise<Listener[]> {
  if (!input.lbId && !input.listenerIds?.length) throw new TypeError("waitForListenersActive: give lbId or listenerIds");
  const timeoutMs = input.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  if (input.lbId) await checkListenersExpected(client, input);
  const wanted = new Set(input.listenerIds ?? []);
  let last = wanted.size ? [...wanted].map((id) => `${id}=MISSING`).join(", ") : "no listeners seen";
  const timedOut = () =>
    new AmphoraError(new ConnectError(`listeners not ACTIVE after ${timeoutMs} ms: ${last}`, Code.DeadlineExceeded), {
      agent: client.baseUrl,
      procedure: "waitForListenersActive",
      // The agent answered; its listeners just are not ACTIVE.
      category: "server",
      hintKey: "listeners_not_active",
    });
  for (;;) {
    // Each poll gets what is left of the budget, but never so little that a
    // busy agent cannot answer at all (the overall wait may overrun by that).
    const pollMs = Math.min(client.timeoutMs || Infinity, Math.max(deadline - Date.now(), 500));
    let listeners: Listener[];
    try {
      ({ listeners } = await client.loadBalancer.listListeners({}, { signal: input.signal, timeoutMs: pollMs }));
    } catch (e) {
      if (ConnectError.from(e).code === Code.DeadlineExceeded && Date.now() >= deadline) throw timedOut();
      throw e;
    }
    const mine = listeners.filter((l) => (wanted.size ? wanted.has(l.uuid) : l.lbId === input.lbId));
    const missing = [...wanted].filter((id) => !mine.some((l) => l.uuid === id));
    const failed = mine.filter((l) => l.status === "ERROR");
    if (failed.length) {
      throw new AmphoraError(
        new ConnectError(`listener(s) in ERROR: ${failed.map((l) => l.uuid).join(", ")}`, Code.FailedPrecondition),
        { agent: client.baseUrl, procedure: "waitForListenersActive", category: "server", hintKey: "listener_config_error" },
      );
    }
    if (mine.length && !missing.length && mine.every((l) => l.status === "ACTIVE")) return mine;
    last = [...mine.filter((l) => l.status !== "ACTIVE").map((l) => `${l.uuid}=${l.status}`), ...missing.map((id) => `${id}=MISSING`)].join(", ") || "no listeners seen";
    if (Date.now() + (input.intervalMs ?? 250) > deadline) throw timedOut();
    try {
      await sleep(input.intervalMs ?? 250, input.signal);
    } catch (e) {
      throw toAmphoraError(new ConnectError("wait canceled", Code.Canceled, undefined, undefined, e), { agent: client.baseUrl, procedure: "waitForListenersActive" });
    }
  }
}
