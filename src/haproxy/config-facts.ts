// What the agent reads out of a controller's haproxy.cfg: the listeners
// (one `frontend <listener_id>` each), their type, and a few global paths.
// This is not a full haproxy parser; it follows the sections and keywords
// Octavia's templates produce.

export type ListenerType = "HTTP" | "TCP" | "TERMINATED_HTTPS";

export interface ListenerFact {
  id: string;
  type: ListenerType;
}

export interface ConfigFacts {
  /** From the first line `# Configuration for loadbalancer <id>`, if present. */
  lbId?: string;
  listeners: ListenerFact[];
  /** `server-state-file` in global, if any. */
  serverStateFile?: string;
}

const SECTION = /^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|mailers|program|http-errors|ring|cache)(?:\s+(\S+))?/;

export function parseConfigFacts(text: string): ConfigFacts {
  const lines = text.split(/\r?\n/);
  const facts: ConfigFacts = { listeners: [] };
  const first = /^#\s*Configuration for loadbalancer\s+(\S+)/.exec(lines[0] ?? "");
  if (first) facts.lbId = first[1];
  let defaultsMode = "tcp"; // haproxy's own default
  let section = "";
  type Frontend = { id: string; mode?: string; ssl: boolean; defaultsMode: string };
  let current: Frontend | undefined;
  const frontends: Frontend[] = [];
  for (const raw of lines) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (!line) continue;
    const sec = SECTION.exec(line);
    if (sec && !/^\s/.test(raw)) {
      section = sec[1]!;
      current = undefined;
      if (section === "frontend") {
        current = { id: sec[2] ?? "", ssl: false, defaultsMode };
        frontends.push(current);
      }
      continue;
    }
    const words = line.split(/\s+/);
    if (section === "global" && words[0] === "server-state-file" && words[1]) facts.serverStateFile = words[1];
    if (words[0] === "mode" && words[1]) {
      if (section === "defaults") defaultsMode = words[1];
      else if (current) current.mode = words[1];
    }
    if (current && words[0] === "bind" && words.includes("ssl") && (words.includes("crt") || words.includes("crt-list"))) {
      current.ssl = true;
    }
  }
  for (const f of frontends) {
    const mode = f.mode ?? f.defaultsMode;
    facts.listeners.push({ id: f.id, type: f.ssl ? "TERMINATED_HTTPS" : mode === "http" ? "HTTP" : "TCP" });
  }
  return facts;
}
