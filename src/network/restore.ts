// What the agent does at start for the network side: after a reboot the
// load-balancer namespace is bare, so recorded plugs are applied again and a
// keepalived that should run is started. After a mere agent restart both
// find everything in place and change nothing. Never fails the agent's start:
// problems are logged and the controller can plug again.
import { existsSync } from "node:fs";
import type { Logger } from "../log.js";
import { runChecked } from "../system/exec.js";
import type { KeepalivedVrrp } from "../keepalived/vrrp.js";
import type { NetworkPlumbing } from "./plumbing.js";
import { reloadStoredRules } from "./interface-rules.js";

/**
 * Creates the load-balancer namespace when it does not exist (a fresh
 * machine without Octavia's boot-time unit), with loopback up.
 */
export async function ensureNamespace(netns: string, logger: Logger): Promise<boolean> {
  if (!netns || existsSync(`/run/netns/${netns}`)) return false;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(netns) || netns.startsWith(".")) throw new Error(`bad network namespace name ${JSON.stringify(netns)}`);
  await runChecked("ip", ["netns", "add", netns], { logger });
  await runChecked("ip", ["-n", netns, "link", "set", "lo", "up"], { logger });
  logger.info({ netns }, "created the load-balancer network namespace");
  return true;
}

export async function restoreAtStart(network: NetworkPlumbing, keepalived: KeepalivedVrrp, logger: Logger, stateDir: string): Promise<void> {
  try {
    await ensureNamespace(network.netns, logger);
  } catch (e) {
    logger.error({ err: e, netns: network.netns }, "could not create the load-balancer network namespace");
  }
  try {
    const r = await network.reapply();
    if (r.applied.length || r.failures.length) logger.info({ applied: r.applied, failures: r.failures }, "recorded plugs re-applied");
  } catch (e) {
    logger.error({ err: e }, "could not re-apply recorded plugs");
  }
  try {
    // After the plugs, so that interfaces moved back in are there to match.
    const r = await reloadStoredRules(network.netns, stateDir, logger);
    if (r.failures.length) logger.warn({ loaded: r.loaded, failures: r.failures }, "some stored interface rules could not be loaded");
  } catch (e) {
    logger.error({ err: e }, "could not reload interface rules");
  }
  try {
    const k = await keepalived.resume();
    if (k !== "idle") logger.info({ keepalived: k }, "keepalived resumed");
  } catch (e) {
    logger.error({ err: e }, "could not restart keepalived");
  }
}
