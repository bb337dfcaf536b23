/**
 * A UTF-16 code unit of a surrogate pair without its other half: a string holding one has no UTF-8 form
 * (a UTF-8 encoder writes U+FFFD for it, so two strings can encode alike).
 */
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Any surrogate code unit. */
const surrogate = /[\ud800-\udfff]/;

/** The index of the first lone surrogate in `s`, or -1. */
export function loneSurrogateAt(s: string): number {
  // a surrogate at all first: the lookaround pattern costs about 25 ns more a key (objstore checks every key)
  return surrogate.test(s) ? s.search(loneSurrogate) : -1;
}

/** `s` with each lone surrogate replaced by U+FFFD, as UTF-8 writes it (`s` itself when it has none). */
export function wellFormed(s: string): string {
  return surrogate.test(s) ? s.replace(loneSurrogate, '\ufffd') : s;
}

/** What a value is, for an error message ("got ..."): its type, or its class's name; 'null' for null. */
export function kindOf(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x !== 'object') return typeof x;
  return (x as object).constructor?.name ?? 'object';
}

/** A value as an error message shows it ("got ..."): strings quoted, so '2' is not taken for 2. */
export function shown(x: unknown): string {
  return typeof x === 'string' ? `'${x}'` : String(x);
}
