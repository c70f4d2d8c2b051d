// Frontend states out of `show stat` CSV. Columns are mapped by the header
// line, never by position.
export function frontendStatuses(csv: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = csv.split("\n").filter((l) => l.trim());
  const header = lines.find((l) => l.startsWith("# "));
  if (!header) return out;
  const cols = header.slice(2).split(",");
  const px = cols.indexOf("pxname");
  const sv = cols.indexOf("svname");
  const st = cols.indexOf("status");
  if (px < 0 || sv < 0 || st < 0) return out;
  for (const l of lines) {
    if (l.startsWith("#")) continue;
    const f = l.split(",");
    if (f[sv] === "FRONTEND") out.set(f[px]!, f[st]!);
  }
  return out;
}
