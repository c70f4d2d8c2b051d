// Parses the master CLI's `show proc` answer (haproxy 2.6):
//   #<PID>  <type>  <reloads>  <uptime>  <version>
//   6180    master  1 [failed: 0]  0d00h00m01s  2.6.12
//   # workers
//   6192    worker  0  0d00h00m00s  2.6.12
//   # programs

export interface ProcEntry {
  pid: number;
  /** Reloads the master has done since this process started; 0 = current worker. */
  reloads: number;
  uptimeSeconds: number;
}

export interface ShowProc {
  master: { pid: number; reloads: number; failed: number; uptimeSeconds: number };
  workers: ProcEntry[];
}

export function parseUptime(s: string): number {
  const m = /^(\d+)d(\d+)h(\d+)m(\d+)s$/.exec(s);
  if (!m) return 0;
  return Number(m[1]) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

export function parseShowProc(text: string): ShowProc {
  let master: ShowProc["master"] | undefined;
  const workers: ProcEntry[] = [];
  let section = "master";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith("#")) {
      if (/^#\s*workers/.test(line)) section = "workers";
      else if (/^#\s*programs/.test(line)) section = "programs";
      continue;
    }
    const m = /^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?\s+(\S+)/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    const reloads = Number(m[3]);
    const uptimeSeconds = parseUptime(m[5]!);
    if (m[2] === "master") master = { pid, reloads, failed: Number(m[4] ?? 0), uptimeSeconds };
    else if (section === "workers" && m[2] === "worker") workers.push({ pid, reloads, uptimeSeconds });
  }
  if (!master) throw new Error(`unexpected "show proc" answer: ${JSON.stringify(text.slice(0, 200))}`);
  return { master, workers };
}
