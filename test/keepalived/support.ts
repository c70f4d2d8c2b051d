// keepalived test helpers: a VRRP configuration for a namespace, and a
// cleanup that kills (by pid file, so only what the test started) any
// keepalived an agent left running.
import { readPidFile, isRunning } from "../../src/keepalived/pid.js";
import type { TestAgent } from "../support/agent.js";

export function vrrpConfig(o: {
  routerId: string;
  state: "MASTER" | "BACKUP";
  priority: number;
  iface: string;
  src: string;
  peer: string;
  vips: string[];
  /** Adds Octavia's vrrp_script block for this script (checked every second) and tracks it. */
  checkScript?: string;
}): string {
  const track = o.checkScript ? "  track_script {\n    check_script\n  }\n" : "";
  return `global_defs {
  router_id ${o.routerId}
  vrrp_garp_master_refresh 5
}
${o.checkScript ? `
vrrp_script check_script {
  script ${o.checkScript}
  interval 1
  fall 1
  rise 1
}
` : ""}
vrrp_instance amt_vip {
  state ${o.state}
  interface ${o.iface}
  virtual_router_id 51
  priority ${o.priority}
  advert_int 1
${o.state === "BACKUP" ? "  nopreempt\n" : ""}  unicast_src_ip ${o.src}
  unicast_peer {
    ${o.peer}
  }
  virtual_ipaddress {
${o.vips.map((v) => `    ${v}`).join("\n")}
  }
${track}}
`;
}

/** Stops keepalived through the agent; if that fails, SIGKILLs the pids from its pid files. */
export async function stopKeepalived(agent: TestAgent | undefined): Promise<void> {
  const k = agent?.ctx.keepalived;
  if (!k) return;
  await k.stop().catch(() => {});
  for (const f of [k.pidFile, k.vrrpPidFile, k.checkersPidFile]) {
    const pid = await readPidFile(f);
    if (pid && (await isRunning(pid, "keepalived"))) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}
