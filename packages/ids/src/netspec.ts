// The address and port fields of a rule (`any`, `!`, `$VAR`, `[...]` lists, CIDR prefixes and a-b
// ranges for addresses; single ports, lo:hi ranges and lists for ports), read once when the rule loads into
// tests on a packet's address bytes and port number.

/**
 * An address test on an address's bytes (4 for IPv4, 16 for IPv6, as decoded): no text is made or parsed
 * per packet. Any other length passes only `any` and what a negation lets through.
 */
export type AddrTest = (a: Uint8Array) => boolean;
export type PortTest = (p: number) => boolean;

/** A dotted IPv4 address's text as an unsigned 32-bit number (rule loading: packets are tested on bytes). */
function ipv4ToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const [a, b, c, d] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  // an octet past 255 is no address (300.1.1.1 was read as 44.1.1.1: 300 << 24 wraps)
  if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * `s` split at the commas outside `[...]`, each part trimmed, empty ones kept (a list's elements; a
 * threshold.config entry's fields, whose ip list holds commas).
 */
export function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if (c === ',' && depth <= 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  out.push(cur.trim());
  return out;
}

/** A list's elements (`splitTopLevel`), empty ones dropped. */
function splitList(s: string): string[] {
  return splitTopLevel(s).filter(Boolean);
}

/** An IPv4 address's bytes as an unsigned 32-bit number. */
export function v4Of(a: Uint8Array): number {
  return ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
}

const noAddr = new Uint8Array(0);

/** An address's bytes from its text (4 for IPv4, 16 for IPv6); undefined when it is neither. */
function addrBytesOf(ip: string): Uint8Array | undefined {
  const v4 = ipv4ToInt(ip);
  if (v4 !== undefined) return Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff);
  const g = expand6(ip);
  if (!g || g.some((x) => !(x >= 0 && x <= 0xffff))) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = g[i]! >> 8;
    out[2 * i + 1] = g[i]! & 0xff;
  }
  return out;
}

/** -1, 0, 1: two addresses of one length compared byte by byte. */
function compareAddr(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** An address spec's test on an address's text (`any`, `!`, `$VAR`, `[...]`, CIDR, a-b ranges, IPv6). */
export function addrTest(spec: string, vars: Record<string, string>): (ip: string) => boolean {
  const t = addrBytesTest(spec, vars);
  return (ip) => t(addrBytesOf(ip) ?? noAddr);
}

/**
 * `spec` with its variables replaced by their values, recursively (to the depth `addrBytesTest` allows), as
 * text: two specs with the same expansion have the same test. Undefined when a variable is undefined or
 * nests too deeply (the test's construction then says so).
 */
export function expandedSpec(spec: string, vars: Record<string, string>, depth = 0): string | undefined {
  if (depth > 10) return undefined;
  let failed = false;
  // a variable's name is the rest of its list element, as addrBytesTest reads it
  const out = spec.replace(/\$([^,\]\s]+)/g, (_, name: string) => {
    const v = vars[name];
    const x = v === undefined ? undefined : expandedSpec(v, vars, depth + 1);
    if (x === undefined) failed = true;
    return x ?? '';
  });
  return failed ? undefined : out.trim();
}

/** An address spec's test on an address's bytes (see {@link AddrTest}). */
export function addrBytesTest(spec: string, vars: Record<string, string>, depth = 0): AddrTest {
  if (depth > 10) throw new Error(`address variables nest too deeply at '${spec}'`);
  const s = spec.trim();
  if (s === 'any') return () => true;
  if (s.startsWith('!')) {
    const t = addrBytesTest(s.slice(1), vars, depth + 1);
    return (a) => !t(a);
  }
  if (s.startsWith('$')) {
    const v = vars[s.slice(1)];
    if (v === undefined) throw new Error(`undefined variable ${s}`);
    return addrBytesTest(v, vars, depth + 1);
  }
  if (s.startsWith('[')) {
    // unclosed, the list lost its last character instead ([10.0.0.0/8,192.168.0.0/16 gave 192.168.0.0/1)
    if (!s.endsWith(']')) throw new Error(`address list '${s}' is not closed by ]`);
    // the list's addresses less its negated elements ([10.0.0.0/24, !10.0.0.5]: the /24 but .5; only
    // negated elements: every address but theirs), as Snort's and Suricata's lists mean; each element was
    // a test of its own and any that passed admitted, so the /24 list admitted every address outside it
    const items = splitList(s.slice(1, -1));
    if (items.length === 0) throw new Error(`empty address list '${s}'`);
    const take: AddrTest[] = [];
    const drop: AddrTest[] = [];
    for (const item of items) {
      const t = item.trim();
      if (t.startsWith('!')) drop.push(addrBytesTest(t.slice(1), vars, depth + 1));
      else take.push(addrBytesTest(t, vars, depth + 1));
    }
    return (a) => {
      for (let i = 0; i < drop.length; i++) if (drop[i]!(a)) return false;
      if (take.length === 0) return true;
      for (let i = 0; i < take.length; i++) if (take[i]!(a)) return true;
      return false;
    };
  }
  const range = /^([0-9a-fA-F:.]+)-([0-9a-fA-F:.]+)$/.exec(s);
  if (range) {
    // an address range (Suricata): lo-hi inclusive, IPv4 or IPv6
    const [lo4, hi4] = [ipv4ToInt(range[1]!), ipv4ToInt(range[2]!)];
    if (lo4 !== undefined && hi4 !== undefined && lo4 > hi4)
      throw new Error(`address range '${s}' ends before it starts`);
    if (lo4 !== undefined && hi4 !== undefined)
      return (a) => {
        if (a.length !== 4) return false;
        const x = v4Of(a);
        return x >= lo4 && x <= hi4;
      };
    const [lo6, hi6] = [addrBytesOf(range[1]!), addrBytesOf(range[2]!)];
    if (lo6?.length !== 16 || hi6?.length !== 16) throw new Error(`bad address range '${s}'`);
    return (a) => a.length === 16 && compareAddr(a, lo6) >= 0 && compareAddr(a, hi6) <= 0;
  }
  const [base, bits, more] = s.split('/') as [string, string | undefined, string | undefined];
  const b4 = ipv4ToInt(base);
  const width = b4 !== undefined ? 32 : 128;
  // what matched nothing, silently: a prefix past the address's bits, not a number, or no address at all
  if (more !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= width)))
    throw new Error(`bad prefix length in '${s}' (0-${width} bits)`);
  if (b4 !== undefined) {
    const n = bits === undefined ? 32 : Number(bits);
    const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
    const want = (b4 & mask) >>> 0;
    return (a) => a.length === 4 && (v4Of(a) & mask) >>> 0 === want;
  }
  // IPv6: the first n bits of the expanded address
  const want = addrBytesOf(base);
  const n = bits === undefined ? 128 : Number(bits);
  if (want?.length !== 16) throw new Error(`bad address '${s}'`);
  const whole = Math.min(16, n >> 3);
  const partMask = n < 128 ? (0xff00 >> (n & 7)) & 0xff : 0;
  return (a) => {
    if (a.length !== 16) return false;
    for (let i = 0; i < whole; i++) if (a[i] !== want[i]) return false;
    return whole === 16 || ((a[whole]! ^ want[whole]!) & partMask) === 0;
  };
}

function expand6(ip: string): number[] | undefined {
  if (!ip.includes(':')) return undefined;
  const halves = ip.split('::');
  if (halves.length > 2) return undefined;
  const [a, b] = halves as [string, string | undefined];
  const head = a ? a.split(':') : [];
  const tail = b ? b.split(':') : [];
  // each group 1-4 hex digits ('1g' was read as 1, an embedded IPv4 address as its first number)
  if (![...head, ...tail].every((x) => /^[0-9a-fA-F]{1,4}$/.test(x))) return undefined;
  if (b !== undefined && head.length + tail.length > 7) return undefined;
  const fill = b === undefined ? [] : Array(8 - head.length - tail.length).fill('0');
  const g = [...head, ...fill, ...tail].map((x) => Number.parseInt(x, 16));
  return g.length === 8 ? g : undefined;
}

/** A port spec's test on a port number. */
export function portTest(spec: string, vars: Record<string, string>, depth = 0): PortTest {
  return intervalTest(portIntervals(spec, vars, depth));
}

/**
 * The ports `spec` admits, as sorted, disjoint, non-adjacent inclusive intervals, flat: [lo0, hi0, lo1,
 * hi1, ...]. A list is the union of its parts, `!` the complement. The test of a list of N ports was N
 * closures tried in turn, and the engine's port regions ask every test at every edge: a list of 30,000
 * ports took 1.6 s to load and 60,000 took 6.4 s; as intervals, a binary search.
 */
export function portIntervals(spec: string, vars: Record<string, string>, depth: number): number[] {
  const s = spec.trim();
  if (depth > 10) throw new Error(`port variables nest too deeply at '${spec}'`);
  if (s === 'any') return [0, 0xffff];
  if (s.startsWith('!')) return complement(portIntervals(s.slice(1), vars, depth + 1));
  if (s.startsWith('$')) {
    const v = vars[s.slice(1)];
    if (v === undefined) throw new Error(`undefined variable ${s}`);
    return portIntervals(v, vars, depth + 1);
  }
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new Error(`port list '${s}' is not closed by ]`);
    // the list's ports less its negated elements ([1:80,![2,4]]: 1-80 but 2 and 4; only negated
    // elements: every port but theirs), as with addresses
    const parts = splitList(s.slice(1, -1));
    if (parts.length === 0) throw new Error(`empty port list '${s}'`);
    const take: number[] = [];
    const drop: number[] = [];
    let taken = false;
    for (const part of parts) {
      const t = part.trim();
      if (t.startsWith('!')) drop.push(...portIntervals(t.slice(1), vars, depth + 1));
      else {
        take.push(...portIntervals(t, vars, depth + 1));
        taken = true;
      }
    }
    return intersect(taken ? union(take) : [0, 0xffff], complement(union(drop)));
  }
  // a port past 65535 or a range ending before it starts matched nothing, silently
  const m = /^(\d*):(\d*)$/.exec(s);
  if (m) {
    const lo = m[1] ? portNumber(m[1], s) : 0;
    const hi = m[2] ? portNumber(m[2], s) : 0xffff;
    if (lo > hi) throw new Error(`port range '${s}' ends before it starts`);
    return [lo, hi];
  }
  if (!/^\d+$/.test(s)) throw new Error(`bad port '${s}'`);
  const n = portNumber(s, s);
  return [n, n];
}

/** A port's number from its digits; past 65535 an error naming `spec`. */
function portNumber(digits: string, spec: string): number {
  const n = Number(digits);
  if (n > 0xffff) throw new Error(`port ${digits} in '${spec}' is over 65535`);
  return n;
}

/** Flat intervals (any order, overlapping) as sorted, disjoint, non-adjacent ones. */
function union(flat: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    if (out.length > 0 && lo <= out[out.length - 1]! + 1)
      out[out.length - 1] = Math.max(out[out.length - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

/** The ports in both of two lists of sorted, disjoint intervals. */
function intersect(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i]!, b[j]!);
    const hi = Math.min(a[i + 1]!, b[j + 1]!);
    if (lo <= hi) out.push(lo, hi);
    if (a[i + 1]! < b[j + 1]!) i += 2;
    else j += 2;
  }
  return out;
}

/** The ports 0-65535 not in sorted, disjoint intervals. */
function complement(iv: number[]): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < iv.length; i += 2) {
    if (iv[i]! > next) out.push(next, iv[i]! - 1);
    next = iv[i + 1]! + 1;
  }
  if (next <= 0xffff) out.push(next, 0xffff);
  return out;
}

/**
 * The entry for `key` of a map shared by a thread's engines, made by `make` when missing; the map is emptied
 * once it holds `max` entries, so it costs bounded memory whatever the rule sets.
 */
export function sharedEntry<T>(map: Map<string, T>, max: number, key: string, make: () => T): T {
  let t = map.get(key);
  if (t === undefined) {
    if (map.size >= max) map.clear();
    t = make();
    map.set(key, t);
  }
  return t;
}

/**
 * Port tests by their intervals, shared by every engine of this thread: a rule reloaded, or a second engine
 * built from the same rules, calls the same functions, so the packet code optimized on the first engine's
 * tests (a call site that had seen one test, such as a `<>` rule's reverse check) is not deoptimized for
 * "wrong call target" in the new engine's first packets. The tests are pure; the map is cleared when it
 * reaches `portTestsShared` entries, so rule sets of many distinct port lists cost no unbounded memory.
 */
const sharedPortTests = new Map<string, PortTest>();
export const portTestsShared = 4096;

function intervalTest(iv: number[]): PortTest {
  return sharedEntry(sharedPortTests, portTestsShared, iv.join(','), () => newIntervalTest(iv));
}

/** Membership in sorted, disjoint intervals: a scan for a few, a binary search for more. */
function newIntervalTest(iv: number[]): PortTest {
  if (iv.length === 0) return () => false;
  if (iv.length === 2) {
    const [lo, hi] = iv as [number, number];
    return lo === 0 && hi === 0xffff ? () => true : (p) => p >= lo && p <= hi;
  }
  const at = Int32Array.from(iv);
  return (p) => {
    let a = 0;
    let b = at.length / 2 - 1;
    while (a <= b) {
      const k = (a + b) >>> 1;
      if (p < at[2 * k]!) b = k - 1;
      else if (p > at[2 * k + 1]!) a = k + 1;
      else return true;
    }
    return false;
  };
}
