// The second config file Octavia passes with another -f: global `user` and
// `group` so the workers drop root. Debian has nobody/nogroup; other systems
// call the group "nobody", and a minimal container may have neither.
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
  const users = await names(passwd);
  const groups = await names(group);
  const nobody = users.get("nobody");
  if (!nobody) {
    return { text: "global\n", note: "user nobody does not exist: haproxy workers keep the agent's user" };
  }
  let groupName = "nogroup";
  let note = "";
  if (!groups.has("nogroup")) {
    // Fall back to nobody's primary group, by name.
    const gid = nobody[3];
    const primary = [...groups.values()].find((g) => g[2] === gid)?.[0];
    if (primary) groupName = primary;
    else if (groups.has("nobody")) groupName = "nobody";
    else return { text: "global\n    user nobody\n", note: "group nogroup does not exist and nobody has no named group: workers keep the agent's group" };
    note = `group nogroup does not exist: using ${groupName}`;
  }
  return { text: `global\n    user nobody\n    group ${groupName}\n`, note };
}
