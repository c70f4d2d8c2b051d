// A one-pass reader of keepalived configuration text: lines of words, with
// the block each line sits in. What the agent needs from an uploaded
// configuration (check-script paths, VIPs, the config policy) is read from
// this, never with regular expressions over the whole text: a pattern like
// /vrrp_script\s+\S+\s*\{([^}]*)\}/ rescans to the end of the text for every
// opener without a closing brace (256 KiB of "vrrp_script a {" lines froze
// the agent for seconds). Time and memory are linear in the text.
//
// Words as keepalived's own parser splits them: blanks separate words, "{"
// and "}" are words of their own, a double-quoted string is one word (quotes
// removed), and a word that starts with "#" or "!" starts a comment that runs
// to the end of the line.

export interface ConfLine {
  /** 1-based line number. */
  line: number;
  words: string[];
  /** Keyword of the innermost enclosing block ("" at the top level), e.g. "virtual_ipaddress". */
  inner: string;
  /** How many blocks enclose the line. */
  depth: number;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 11 || c === 12;
}

/**
 * Words kept of one line: keepalived's own lines are a few words long; a
 * hostile line of a million "{" would otherwise become a million strings.
 * The rest of a longer line is ignored (keepalived -t still judges it).
 */
export const MAX_WORDS = 256;

/** The words of one line (at most MAX_WORDS). */
export function confWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n && words.length < MAX_WORDS) {
    const c = line.charCodeAt(i);
    if (isBlank(c)) {
      i++;
      continue;
    }
    const ch = line[i]!;
    if (ch === "#" || ch === "!") break;
    if (ch === "{" || ch === "}") {
      words.push(ch);
      i++;
      continue;
    }
    if (ch === '"') {
      const close = line.indexOf('"', i + 1);
      const end = close < 0 ? n : close;
      words.push(line.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < n) {
      const d = line.charCodeAt(j);
      if (isBlank(d) || d === 123 /* { */ || d === 125 /* } */ || d === 34 /* " */) break;
      j++;
    }
    words.push(line.slice(i, j));
    i = j;
  }
  return words;
}

/**
 * Calls `each` for every non-empty line with its words and innermost block
 * (named by the first word of the line that opened it); `each` returning
 * false stops the scan. Unbalanced braces are tolerated (keepalived -t
 * judges the syntax). Nothing is kept per line, so memory stays flat.
 */
export function scanConf(text: string, each: (l: ConfLine) => boolean | void): void {
  const stack: string[] = [];
  let start = 0;
  let number = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    number++;
    const words = confWords(text.slice(start, end));
    start = end + 1;
    if (!words.length) continue;
    if (each({ line: number, words, inner: stack.length ? stack[stack.length - 1]! : "", depth: stack.length }) === false) return;
    // Opening and closing braces on the line, in order (a one-line block "x { y }" opens and closes).
    let opener = words[0]!;
    for (const w of words) {
      if (w === "{") stack.push(opener === "{" ? (stack.length ? stack[stack.length - 1]! : "") : opener);
      else if (w === "}") stack.pop();
      else if (opener === "{") opener = w;
    }
  }
}

/** Every non-empty line (see scanConf). */
export function confLines(text: string): ConfLine[] {
  const out: ConfLine[] = [];
  scanConf(text, (l) => {
    out.push(l);
  });
  return out;
}
