/**
 * Parser for `WWW-Authenticate` (RFC 9110 section 11.6.1): several challenges per header and
 * several headers per response, quoted-string values with backslash escapes, and commas inside
 * quotes (scopes such as `repository:a:pull,push`).
 */

export interface Challenge {
  /** Lower-cased scheme: "basic", "bearer", ... */
  scheme: string;
  /** Lower-cased parameter names to values. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

class Scanner {
  pos = 0;
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? "";
  }

  skipSpace(): void {
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
  }

  skipSpaceAndCommas(): void {
    while (this.peek() === " " || this.peek() === "\t" || this.peek() === ",") this.pos++;
  }

  token(): string {
    const start = this.pos;
    while (!this.done && TOKEN_CHAR.test(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** A quoted-string; assumes the opening quote is next. Unterminated strings run to the end. */
  quoted(): string {
    this.pos++;
    let out = "";
    while (!this.done) {
      const c = this.peek();
      this.pos++;
      if (c === "\\" && !this.done) {
        out += this.peek();
        this.pos++;
      } else if (c === '"') {
        return out;
      } else {
        out += c;
      }
    }
    return out;
  }

  /** Skips to the next comma outside quotes (error recovery for junk). */
  skipJunk(): void {
    while (!this.done && this.peek() !== ",") {
      if (this.peek() === '"') this.quoted();
      else this.pos++;
    }
  }
}

/** Parses one or more `WWW-Authenticate` header values into challenges, in order. */
export function parseChallenges(headerValues: readonly string[]): Challenge[] {
  const out: Challenge[] = [];
  for (const value of headerValues) parseInto(value, out);
  return out;
}

function parseInto(value: string, out: Challenge[]): void {
  const s = new Scanner(value);
  let current: Challenge | undefined;
  while (!s.done) {
    s.skipSpaceAndCommas();
    if (s.done) break;
    const start = s.pos;
    const name = s.token();
    if (name === "") {
      s.skipJunk();
      continue;
    }
    s.skipSpace();
    if (s.peek() === "=" && current !== undefined) {
      // `name=value`: a parameter of the current challenge, unless this is a token68 (`abc==`).
      s.pos++;
      s.skipSpace();
      if (s.peek() === "=" || s.peek() === "," || s.done) {
        while (s.peek() === "=") s.pos++;
        continue;
      }
      const v = s.peek() === '"' ? s.quoted() : s.token();
      current.params[name.toLowerCase()] = v;
      continue;
    }
    if (s.peek() === "=" && current === undefined) {
      // A parameter with no scheme before it: not a challenge we can use.
      s.pos = start;
      s.skipJunk();
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
  }
}

/** Space-separated scopes of a challenge's `scope` parameter. */
export function challengeScopes(challenge: Challenge): string[] {
  const scope = challenge.params.scope;
  if (scope === undefined) return [];
  return scope.split(" ").filter((s) => s !== "");
}
