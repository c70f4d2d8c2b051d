// Remembers, per line index, what the previous `show stat` answer of one
// load balancer said and what was built from it, so that a line that did
// not change is not split and parsed again. Most objects of a big load
// balancer do not move between two polls, but every server line differs in
// one field at every poll: lastchg (seconds since the last status change)
// counts up. So a line is compared with its predecessor with that one field
// left out, and the caller reads the new lastchg separately (lastchg()).
//
// A hit promises only that the line's other bytes are identical to the
// previous poll's line at the same index; what that is worth (e.g. the same
// worker, so the same totals) is for the caller to decide and to clear()
// when it no longer holds.

/**
 * A copy of `s` that does not keep alive the string it was cut from. V8
 * makes a slice of a long string (13 characters and more) a view of the
 * whole original: a remembered line, or a member id read from it, kept one
 * whole `show stat` answer (3.7 MB for a big load balancer) alive per poll
 * it came from (25 MB of them seen in a heap snapshot of a watched agent).
 * Concatenating forces a flat copy of the piece alone.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : (" " + s).slice(1);
}

interface Entry<T> {
  /** The line up to the lastchg field, and from the comma after it. */
  prefix: string;
  suffix: string;
  /** The line has no lastchg field: prefix is all of it. */
  whole: boolean;
  value: T;
}

export class LineMemo<T> {
  private entries: (Entry<T> | undefined)[] = [];
  private header: string | undefined;
  private lastchgCol = -1;
  /** Bounds of the lastchg field in the line last given to lookup(). */
  private line = "";
  private start = -1;
  private end = -1;
  /** Whether the line last located has a lastchg field. */
  private hasField = false;
  hits = 0;
  misses = 0;

  clear(): void {
    this.entries = [];
    this.header = undefined;
  }

  /**
   * Starts a poll. Another header line means columns may have moved: a
   * remembered line no longer means the same values.
   */
  begin(header: string, lastchgCol: number, lineCount: number): void {
    if (header !== this.header || lastchgCol !== this.lastchgCol) {
      this.entries = [];
      this.header = detach(header);
      this.lastchgCol = lastchgCol;
    }
    // Lines past the end of this answer are of a config that changed.
    if (this.entries.length > lineCount) this.entries.length = lineCount;
  }

  /** Finds the lastchg field of `line` (the whole line is compared if there is none). */
  private locate(line: string): void {
    if (line === this.line) return;
    this.line = line;
    this.start = this.end = line.length;
    this.hasField = false;
    if (this.lastchgCol < 0) return;
    let p = 0;
    for (let k = 0; k < this.lastchgCol; k++) {
      const c = line.indexOf(",", p);
      if (c < 0) return; // a short line: no such field, compare it whole
      p = c + 1;
    }
    const e = line.indexOf(",", p);
    this.start = p;
    this.end = e < 0 ? line.length : e;
    this.hasField = true;
  }

  /** What was stored for line i if the line equals the previous one there, lastchg aside. */
  lookup(i: number, line: string): T | undefined {
    const e = this.entries[i];
    if (e && this.matches(e, line)) {
      this.hits++;
      return e.value;
    }
    this.misses++;
    return undefined;
  }

  /**
   * Compares without looking for the lastchg field by counting commas: if
   * the line starts with the remembered prefix (which ends with the comma
   * before lastchg), lastchg starts right after it.
   */
  private matches(e: Entry<T>, line: string): boolean {
    // slice + === rather than startsWith/endsWith: V8 compares equal-length
    // strings with memcmp, startsWith char by char (10x slower here).
    if (e.whole) return line === e.prefix;
    const start = e.prefix.length;
    if (line.slice(0, start) !== e.prefix) return false;
    let end = line.indexOf(",", start);
    if (end < 0) end = line.length;
    if (line.length - end !== e.suffix.length || line.slice(end) !== e.suffix) return false;
    this.line = line;
    this.start = start;
    this.end = end;
    this.hasField = true;
    return true;
  }

  /** Remembers line i and what was built from it. */
  store(i: number, line: string, value: T): void {
    this.locate(line);
    const whole = !this.hasField;
    this.entries[i] = { prefix: detach(line.slice(0, this.start)), suffix: detach(line.slice(this.end)), whole, value };
  }

  /** Forgets line i (e.g. a line that is not compared raw). */
  forget(i: number): void {
    this.entries[i] = undefined;
  }

  /**
   * The lastchg value of `line` (0 when absent or not a plain number), read
   * without splitting the line.
   */
  lastchg(line: string): number {
    this.locate(line);
    let n = 0;
    if (this.end <= this.start) return 0;
    for (let k = this.start; k < this.end; k++) {
      const d = line.charCodeAt(k) - 48;
      if (d < 0 || d > 9) {
        // Not plain digits: read it as the splitting path would.
        const v = Number(line.slice(this.start, this.end));
        return Number.isFinite(v) && v >= 0 ? v : 0;
      }
      n = n * 10 + d;
    }
    return n;
  }
}
