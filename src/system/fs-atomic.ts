// Atomic file writes and state-directory path safety.
import { open, rename, unlink, mkdir, readFile, stat, chmod } from "node:fs/promises";
import { dirname, resolve, sep, basename } from "node:path";
import { randomBytes } from "node:crypto";
import { invalid } from "../errors.js";

/** The longest file name (bytes) Linux file systems store (NAME_MAX). */
export const NAME_MAX = 255;

/**
 * The temp file a write of `path` goes through: `.<name>.<random>.tmp` in the
 * same folder (the shape start-up clean-ups look for), the name cut so the
 * whole stays within NAME_MAX: every name that can be stored can be written.
 */
export function tempPathFor(path: string): string {
  const suffix = `.${randomBytes(6).toString("hex")}.tmp`;
  const room = NAME_MAX - 1 - Buffer.byteLength(suffix);
  // Cut by whole characters, never inside a multi-byte one.
  let name = "";
  let bytes = 0;
  for (const ch of basename(path)) {
    bytes += Buffer.byteLength(ch);
    if (bytes > room) break;
    name += ch;
  }
  return `${dirname(path)}${sep}.${name}${suffix}`;
}

/**
 * Writes a file so that a crash at any point leaves either the old or the
 * new complete content: temp file in the same folder, fsync, rename, fsync
 * of the folder.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, o: { syncDir?: boolean; createDir?: boolean } = {}): Promise<void> {
  const dir = dirname(path);
  // createDir: false where the folder's existence means something (a load
  // balancer's folder): a late write after its removal fails instead of
  // bringing the folder back.
  if (o.createDir !== false) await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(path);
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  // syncDir: false when the caller writes another file into the same folder
  // right after and syncs the folder then (one folder sync covers both renames).
  if (o.syncDir === false) return;
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * writeFileAtomic, unless the file already holds exactly `data` (then at
 * most its mode is corrected, which needs no space). Returns whether it wrote.
 */
export async function writeFileIfChanged(path: string, data: string | Uint8Array, mode = 0o644, o: { syncDir?: boolean; createDir?: boolean } = {}): Promise<boolean> {
  const want = typeof data === "string" ? Buffer.from(data) : data;
  try {
    const [have, st] = await Promise.all([readFile(path), stat(path)]);
    if (st.isFile() && Buffer.compare(have, want) === 0) {
      if ((st.mode & 0o7777) !== mode) await chmod(path, mode);
      return false;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  await writeFileAtomic(path, data, mode, o);
  return true;
}

/** Joins `parts` below `root` and refuses any result outside it. */
export function safeJoin(root: string, ...parts: string[]): string {
  const base = resolve(root);
  const p = resolve(base, ...parts);
  if (p !== base && !p.startsWith(base + sep)) throw invalid(`path escapes the state directory: ${parts.join("/")}`);
  return p;
}
