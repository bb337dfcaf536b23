/**
 * byte_test, byte_jump and byte_extract: read a number from the buffer (binary big or little endian, or an
 * ASCII number in decimal, hex or octal), then compare it, move the cursor by it, or keep it in a named
 * variable for later options. Syntax and meaning follow the Snort 2.9 manual (sections 3.5.x) and Snort 3's
 * rule options reference, with Suricata's additions (bitmask, from_end, post_offset, variables as byte
 * counts and offsets; a jump before the buffer start stops at the start).
 *
 *   byte_test:    bytes, [!]op, value, offset [, relative] [, big|little] [, string, hex|dec|oct] [, bitmask M]
 *   byte_jump:    bytes, offset [, relative] [, multiplier N] [, big|little] [, string, hex|dec|oct] [, align]
 *                 [, from_beginning | from_end] [, post_offset N] [, bitmask M]
 *   byte_extract: bytes, offset, name [, relative] [, multiplier N] [, big|little] [, string, hex|dec|oct]
 *                 [, align 2|4] [, bitmask M]
 */

/** A number, or the name of a byte_extract variable. */
export type NumOrVar = number | string;

interface ReadSpec {
  bytes: NumOrVar;
  offset: NumOrVar;
  relative: boolean;
  little: boolean;
  /** `dce`: the byte order of the DCE/RPC request whose stub is inspected (elsewhere `little` holds). */
  dce?: boolean;
  /** 0: binary; 8, 10, 16: an ASCII number in that base. */
  base: 0 | 8 | 10 | 16;
  bitmask?: number;
}

export interface ByteTest extends ReadSpec {
  kind: 'byte_test';
  op: '<' | '>' | '=' | '<=' | '>=' | '&' | '^';
  negated: boolean;
  value: NumOrVar;
}

export interface ByteJump extends ReadSpec {
  kind: 'byte_jump';
  multiplier: number;
  align: boolean;
  fromBeginning: boolean;
  fromEnd: boolean;
  postOffset: number;
}

export interface ByteExtract extends ReadSpec {
  kind: 'byte_extract';
  name: string;
  multiplier: number;
  align: number;
}

/** Largest byte count read as binary (Suricata: 8) and as a string (Snort: 10; hex strings need more). */
export const binaryBytesMax = 8;
export const stringBytesMax = 32;

const wholeNumber = /^-?(?:\d+|0x[0-9a-f]+)$/i;

/**
 * `s` as a whole number, decimal or 0x hex, as Snort reads one (strtol); NaN when it is not one: '1.5' or
 * '1e3' was taken as a fraction or a thousand (a fractional offset read nothing); Snort reads either as a
 * variable name and refuses it.
 */
function wholeOrNaN(s: string): number {
  const t = s.trim();
  if (!wholeNumber.test(t)) return Number.NaN;
  return /^-?0x/i.test(t)
    ? (t.startsWith('-') ? -1 : 1) * Number.parseInt(t.replace(/^-?0x/i, ''), 16)
    : Number(t);
}

/** `wholeOrNaN`, or an error naming `what`. */
function parseNum(s: string, what: string): number {
  const n = wholeOrNaN(s);
  if (Number.isNaN(n)) throw new Error(`${what}: expected a whole number, got '${s}'`);
  return n;
}

/** A whole number (`wholeOrNaN`) from `lo` to `hi`. */
function wholeIn(s: string, what: string, lo: number, hi: number): number {
  const n = wholeOrNaN(s);
  if (!(n >= lo && n <= hi))
    throw new Error(`${what}: expected a whole number from ${lo} to ${hi}, got '${s}'`);
  return n;
}

/**
 * A byte option's count of bytes to read: a variable, or a whole number from `min` to what the reading can
 * take (8 bytes as a binary number, 32 as text). Past that the read was refused at every packet, so the
 * rule never matched, silently; 0 read nothing.
 */
function byteCount(x: NumOrVar, base: ReadSpec['base'], what: string, min = 1): NumOrVar {
  if (typeof x === 'string') return x;
  const max = base === 0 ? binaryBytesMax : stringBytesMax;
  if (!Number.isInteger(x) || x < min || x > max)
    throw new Error(
      `${what}: ${x} bytes, expected ${min} to ${max} (${base === 0 ? 'a binary number' : 'a number as text'})`,
    );
  return x;
}

/** Bytes a bitmask spans (1 to 4), as Snort counts them: 0xff is 1, 0x100 is 2. */
function bitmaskBytes(mask: number): number {
  return mask <= 0xff ? 1 : mask <= 0xffff ? 2 : mask <= 0xffffff ? 3 : 4;
}

/**
 * The checks Snort 3 makes when a byte option ends (ips_byte_test.cc, ips_byte_jump.cc,
 * ips_byte_extract.cc): a bitmask no wider than the bytes read (its upper bits could never be set), and
 * hex, dec or oct only with `string` (Snort 3 reads the number as binary without it, this engine read text).
 */
function checkRead(what: string, bytes: NumOrVar, m: ReturnType<typeof modifiers>): void {
  if (m.bitmask !== undefined && typeof bytes === 'number' && bitmaskBytes(m.bitmask) > bytes)
    throw new Error(
      `${what}: bitmask 0x${m.bitmask.toString(16)} is ${bitmaskBytes(m.bitmask)} bytes wide, wider than the ${bytes} read`,
    );
  if (m.base !== 0 && !m.string)
    throw new Error(
      `${what}: ${m.base === 16 ? 'hex' : m.base === 8 ? 'oct' : 'dec'} needs 'string' (a number as text)`,
    );
}

function numOrVar(s: string | undefined, what: string): NumOrVar {
  const t = (s ?? '').trim();
  if (/^[A-Za-z_]\w*$/.test(t)) return t;
  return parseNum(t, what);
}

/** The modifiers after the positional fields; `rest` holds them split at commas. */
function modifiers(rest: string[], what: string, allowed: Set<string>) {
  const m = {
    relative: false,
    little: false,
    dce: false,
    base: 0 as ReadSpec['base'],
    bitmask: undefined as number | undefined,
    multiplier: 1,
    align: 0,
    fromBeginning: false,
    fromEnd: false,
    postOffset: 0,
    string: false,
  };
  for (const raw of rest) {
    const [k = '', v] = raw.trim().split(/\s+/, 2) as [string?, string?];
    if (!allowed.has(k)) throw new Error(`${what}: modifier '${k}' is not supported`);
    switch (k) {
      case 'relative':
        m.relative = true;
        break;
      case 'little':
        m.little = true;
        break;
      case 'big':
        m.little = false;
        break;
      case 'dce':
        m.dce = true;
        break;
      case 'string':
        m.string = true;
        if (m.base === 0) m.base = 10;
        break;
      case 'hex':
        m.base = 16;
        break;
      case 'dec':
        m.base = 10;
        break;
      case 'oct':
        m.base = 8;
        break;
      // Snort 3's ranges (a fractional bitmask threw at the first packet read: the whole run failed; a
      // fractional multiplier or align made fractional offsets)
      case 'bitmask':
        m.bitmask = wholeIn(v ?? '', `${what} bitmask`, 1, 0xffffffff);
        break;
      case 'multiplier':
        m.multiplier = wholeIn(v ?? '', `${what} multiplier`, 1, 65535);
        break;
      case 'align':
        if (v !== undefined && v !== '2' && v !== '4')
          throw new Error(`${what} align: expected 2 or 4, got '${v}'`);
        m.align = v === undefined ? 4 : Number(v);
        break;
      case 'from_beginning':
        m.fromBeginning = true;
        break;
      case 'from_end':
        m.fromEnd = true;
        break;
      case 'post_offset':
        m.postOffset = wholeIn(v ?? '', `${what} post_offset`, -65535, 65535);
        break;
    }
  }
  return m;
}

const common = ['relative', 'little', 'big', 'string', 'hex', 'dec', 'oct', 'bitmask', 'dce'];

export function parseByteTest(v: string): ByteTest {
  const p = v.split(',');
  if (p.length < 4) throw new Error(`byte_test '${v}': expected bytes, operator, value, offset`);
  let op = p[1]!.trim().replace(/\s+/g, '');
  let negated = false;
  if (op.startsWith('!')) {
    negated = true;
    op = op.slice(1) || '=';
  }
  if (!['<', '>', '=', '<=', '>=', '&', '^'].includes(op))
    throw new Error(`byte_test: bad operator '${p[1]}'`);
  const m = modifiers(p.slice(4), 'byte_test', new Set(common));
  const bytes = byteCount(numOrVar(p[0], 'byte_test bytes'), m.base, 'byte_test');
  checkRead('byte_test', bytes, m);
  return {
    kind: 'byte_test',
    bytes,
    op: op as ByteTest['op'],
    negated,
    value: numOrVar(p[2], 'byte_test value'),
    offset: numOrVar(p[3], 'byte_test offset'),
    relative: m.relative,
    little: m.little,
    ...(m.dce && { dce: true }),
    base: m.base,
    ...(m.bitmask !== undefined && { bitmask: m.bitmask }),
  };
}

export function parseByteJump(v: string): ByteJump {
  const p = v.split(',');
  if (p.length < 2) throw new Error(`byte_jump '${v}': expected bytes, offset`);
  const m = modifiers(
    p.slice(2),
    'byte_jump',
    new Set([...common, 'multiplier', 'align', 'from_beginning', 'from_end', 'post_offset']),
  );
  const bytes = byteCount(numOrVar(p[0], 'byte_jump bytes'), m.base, 'byte_jump', 0);
  checkRead('byte_jump', bytes, m);
  // Snort 3 refuses the pair; here from_beginning won, silently
  if (m.fromBeginning && m.fromEnd) throw new Error('byte_jump: from_beginning and from_end together');
  return {
    kind: 'byte_jump',
    bytes,
    offset: numOrVar(p[1], 'byte_jump offset'),
    relative: m.relative,
    little: m.little,
    ...(m.dce && { dce: true }),
    base: m.base,
    ...(m.bitmask !== undefined && { bitmask: m.bitmask }),
    multiplier: m.multiplier,
    align: m.align !== 0,
    fromBeginning: m.fromBeginning,
    fromEnd: m.fromEnd,
    postOffset: m.postOffset,
  };
}

export function parseByteExtract(v: string): ByteExtract {
  const p = v.split(',');
  if (p.length < 3) throw new Error(`byte_extract '${v}': expected bytes, offset, name`);
  const name = p[2]!.trim();
  if (!/^[A-Za-z_]\w*$/.test(name)) throw new Error(`byte_extract: bad variable name '${name}'`);
  const m = modifiers(p.slice(3), 'byte_extract', new Set([...common, 'multiplier', 'align']));
  const bytes = byteCount(numOrVar(p[0], 'byte_extract bytes'), m.base, 'byte_extract');
  checkRead('byte_extract', bytes, m);
  // Snort 3's range for the offset, and a negative one only from the cursor (before the buffer's start it
  // read nothing, so the variable was never set)
  const offset = numOrVar(p[1], 'byte_extract offset');
  if (typeof offset === 'number' && (offset < -65535 || offset > 65535))
    throw new Error(`byte_extract: offset ${offset} is out of range (-65535 to 65535)`);
  if (typeof offset === 'number' && offset < 0 && !m.relative)
    throw new Error(`byte_extract: a negative offset (${offset}) needs 'relative'`);
  return {
    kind: 'byte_extract',
    bytes,
    offset,
    name,
    relative: m.relative,
    little: m.little,
    ...(m.dce && { dce: true }),
    base: m.base,
    ...(m.bitmask !== undefined && { bitmask: m.bitmask }),
    multiplier: m.multiplier,
    align: m.align,
  };
}

/** Resolves a number or a variable; undefined when the variable is not set. */
export function resolve(x: NumOrVar, vars: Map<string, number>): number | undefined {
  return typeof x === 'number' ? x : vars.get(x);
}

/**
 * Reads the value at `at` in `buf`; undefined when the bytes are not all there or (string forms) are not a
 * number. A bitmask is applied and the result shifted right past the mask's trailing zero bits.
 */
export function readValue(
  buf: Uint8Array,
  at: number,
  spec: ReadSpec,
  bytes: number,
  little = spec.little,
): number | undefined {
  if (at < 0 || at + bytes > buf.length) return undefined;
  let v: number;
  if (spec.base === 0) {
    if (bytes > binaryBytesMax) return undefined;
    v = 0;
    for (let i = 0; i < bytes; i++) {
      const b = buf[little ? at + bytes - 1 - i : at + i]!;
      v = v * 256 + b;
    }
  } else {
    if (bytes > stringBytesMax) return undefined;
    let text = '';
    for (let i = 0; i < bytes; i++) text += String.fromCharCode(buf[at + i]!);
    const digits =
      spec.base === 16 ? /^\s*(?:0x)?([0-9a-f]+)/i : spec.base === 8 ? /^\s*([0-7]+)/ : /^\s*([0-9]+)/;
    const m = digits.exec(text);
    if (!m) return undefined;
    v = Number.parseInt(m[1]!, spec.base);
  }
  if (spec.bitmask !== undefined) {
    const mask = BigInt(spec.bitmask);
    let x = BigInt(v) & mask;
    if (mask !== 0n) for (let m = mask; (m & 1n) === 0n; m >>= 1n) x >>= 1n;
    v = Number(x);
  }
  return v;
}

/** byte_test's comparison. */
export function compare(t: ByteTest, got: number, want: number): boolean {
  let r: boolean;
  switch (t.op) {
    case '<':
      r = got < want;
      break;
    case '>':
      r = got > want;
      break;
    case '<=':
      r = got <= want;
      break;
    case '>=':
      r = got >= want;
      break;
    case '&':
      r = (BigInt(got) & BigInt(want)) !== 0n;
      break;
    case '^':
      r = (BigInt(got) ^ BigInt(want)) !== 0n;
      break;
    default:
      r = got === want;
  }
  return r !== t.negated;
}
