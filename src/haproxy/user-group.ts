// The second config file Octavia passes with another -f: a `global` section
// with only the `group` the workers switch to. The controller's template
// already renders `user nobody`; a second `user` line here would make every
// `haproxy -c` and start log "[ALERT] ... user/uid already specified".
// Debian/Ubuntu images use nogroup, CentOS-family images haproxy; a system
// without nogroup falls back to nobody's primary group by name.
import { readFile } from "node:fs/promises";

async function names(file: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  try {
    for (const line of (await readFile(file, "utf8")).split("\n")) {
      const f = line.split(":");
      if (f[0]) out.set(f[0], f);
    }
  } catch {
    // No such file: no names.
  }
  return out;
}

/** The text of the user/group config for this machine, plus a note when it had to deviate. */
export async function userGroupConfig(passwd = "/etc/passwd", group = "/etc/group"): Promise<{ text: string; note: string }> {
  const groups = await names(group);
  if (groups.has("nogroup")) return { text: "global\n    group nogroup\n", note: "" };
  const gid = (await names(passwd)).get("nobody")?.[3];
  const primary = gid === undefined ? undefined : [...groups.values()].find((g) => g[2] === gid)?.[0];
  const fallback = primary ?? (groups.has("nobody") ? "nobody" : undefined);
  if (!fallback) return { text: "global\n", note: "group nogroup does not exist and nobody has no named group: workers keep the agent's group" };
  return { text: `global\n    group ${fallback}\n`, note: `group nogroup does not exist: using ${fallback}` };
}
