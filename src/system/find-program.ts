// Where a program is on PATH, as a shell would find it.
import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";

/** The absolute path of `program` on PATH (plus the sbin folders a non-login PATH may lack), or undefined. */
export async function findProgram(program: string): Promise<string | undefined> {
  if (program.includes("/")) return access(program, constants.X_OK).then(() => program, () => undefined);
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"].filter(Boolean);
  for (const d of new Set(dirs)) {
    const f = join(d, program);
    if (await access(f, constants.X_OK).then(() => true, () => false)) return f;
  }
  return undefined;
}
