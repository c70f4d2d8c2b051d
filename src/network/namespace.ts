// The load-balancer network namespace. Octavia's agent creates it when the
// first port is plugged (and its image at boot); this agent does the same,
// and at start only when it has plugs to restore into it, so an agent that
// never plugged anything creates no namespace on its host.
import { existsSync } from "node:fs";
import type { Logger } from "../log.js";
import { runChecked } from "../system/exec.js";

/** Whether the named namespace exists ("" = the agent's own, which always does). */
export function namespaceExists(netns: string): boolean {
  return !netns || existsSync(`/run/netns/${netns}`);
}

/** Creates `netns` (with loopback up) when it does not exist; true when it did so. */
export async function ensureNamespace(netns: string, logger: Logger): Promise<boolean> {
  if (namespaceExists(netns)) return false;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(netns) || netns.startsWith(".")) throw new Error(`bad network namespace name ${JSON.stringify(netns)}`);
  await runChecked("ip", ["netns", "add", netns], { logger });
  await runChecked("ip", ["-n", netns, "link", "set", "lo", "up"], { logger });
  logger.info({ netns }, "created the load-balancer network namespace");
  return true;
}
