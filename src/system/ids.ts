// Identifier checks shared by every module that turns an id into a path.

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** True for a canonical UUID (what Octavia uses for every id). */
export function isUuid(s: string): boolean {
  return UUID.test(s);
}
