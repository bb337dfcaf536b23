// Rule option values read once into tests on a packet's header fields and lengths (fragbits, flags, ttl
// and the other numeric fields, bufferlen/bsize/urilen), and the option vocabularies the compiler checks
// against (flow, flowbits, ip_proto names, tag).

/**
 * A `tag` option: after the rule alerts, the packets that follow in its flow (`session`) or to and from
 * one host of its alert (`src`, `dst`) are tagged, until any of the bounds runs out (Infinity: none).
 */
export interface TagSpec {
  scope: 'session' | 'src' | 'dst';
  packets: number;
  bytes: number;
  seconds: number;
}

/** Packets a tag takes when its option names no bound (Suricata's default). */
export const tagPacketsDefault = 256;

/**
 * `tag` in Snort 3 form (`session|host_src|host_dst, packets N[, seconds N][, bytes N]`), Snort 2 form
 * (`session|host, N, packets|seconds|bytes[, N, metric]...[, src|dst][, exclusive]`) or Suricata's
 * (`session|host[, N, metric][, src|dst]`). A count of 0 sets no bound by its metric; no bound at all is
 * 256 packets; a host is the alert's destination unless `src` says otherwise (Suricata's defaults).
 * Snort 2's `exclusive` (one tag a host) is accepted and not followed. Throws on anything else.
 */
export function parseTag(v: string): TagSpec {
  const p = v.split(',').map((x) => x.trim());
  const bounds: Record<string, number> = {};
  let scope: TagSpec['scope'] | undefined;
  let ok = false;
  const snort3Metric = /^(packets|seconds|bytes)\s+\d+$/;
  if (/^(host_src|host_dst)$/.test(p[0]!) || (p[0] === 'session' && snort3Metric.test(p[1] ?? ''))) {
    // Snort 3: each further part a metric and its count
    ok =
      p.length >= 2 &&
      p.slice(1).every((x) => {
        const m = /^(packets|seconds|bytes)\s+(\d+)$/.exec(x);
        if (m) bounds[m[1]!] = Number(m[2]);
        return m !== null;
      });
    scope = p[0] === 'session' ? 'session' : p[0] === 'host_src' ? 'src' : 'dst';
  } else if (/^(session|host)$/.test(p[0]!)) {
    // Snort 2 and Suricata: count and metric pairs, then the direction and exclusive
    let i = 1;
    ok = true;
    for (; i + 1 < p.length && /^\d+$/.test(p[i]!); i += 2) {
      if (!/^(packets|seconds|bytes)$/.test(p[i + 1]!)) ok = false;
      bounds[p[i + 1]!] = Number(p[i]);
    }
    let dir: 'src' | 'dst' = 'dst';
    for (; i < p.length; i++) {
      if (p[i] === 'src' || p[i] === 'dst') dir = p[i] as 'src' | 'dst';
      else if (p[i] !== 'exclusive') ok = false;
    }
    scope = p[0] === 'session' ? 'session' : dir;
  }
  if (!ok || scope === undefined)
    throw new Error(
      `tag: expected 'session|host_src|host_dst, packets|seconds|bytes N' or 'session|host[, N, packets|seconds|bytes][, src|dst]', got '${v}'`,
    );
  const bound = (k: string) => (bounds[k] ? bounds[k] : Number.POSITIVE_INFINITY);
  const spec = { scope, packets: bound('packets'), bytes: bound('bytes'), seconds: bound('seconds') };
  if (Math.min(spec.packets, spec.bytes, spec.seconds) === Number.POSITIVE_INFINITY)
    spec.packets = tagPacketsDefault;
  return spec;
}

/** bufferlen / bsize / urilen: `n`, `<n`, `>n`, `<=n`, `>=n`, `a<>b` (exclusive), `a<=>b` (inclusive). */
export function lengthTest(v: string): (n: number) => boolean {
  const m = /^\s*(\d+)\s*<=>\s*(\d+)\s*$/.exec(v);
  if (m) {
    const [lo, hi] = [Number(m[1]), Number(m[2])];
    if (lo > hi) throw new Error(`length range '${v}' ends before it starts`);
    return (n) => n >= lo && n <= hi;
  }
  return numTest(v);
}

/** The options of `flow` the engine evaluates. */
export const flowOptions = new Set([
  'established',
  'not_established',
  'stateless',
  'to_server',
  'from_client',
  'to_client',
  'from_server',
  'only_stream',
  'no_stream',
  'no_frag',
  'only_frag',
]);

/** The operations of `flowbits`. */
export const flowbitsOps = ['set', 'unset', 'toggle', 'isset', 'isnotset', 'noalert'];

/** The largest value of the header fields the numeric options test. */
export const fieldMax: Record<string, number> = {
  itype: 0xff,
  icode: 0xff,
  ttl: 0xff,
  id: 0xffff,
  seq: 0xffffffff,
  ack: 0xffffffff,
  icmp_id: 0xffff,
  icmp_seq: 0xffff,
};

/** Protocol names ip_proto takes (IANA protocol numbers). */
export const ipProtoNames: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  egp: 8,
  igp: 9,
  udp: 17,
  rdp: 27,
  ipv6: 41,
  rsvp: 46,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  ospf: 89,
  pim: 103,
  sctp: 132,
};

/**
 * fragbits: `[+*!]` then bits among M (more fragments), D (don't fragment), R (reserved), as Snort: no
 * modifier, exactly those bits; `+` those and maybe others; `*` any of them; `!` none of them.
 */
export function fragbitsTest(v: string): (flags: number) => boolean {
  const m = /^\s*([+*!]?)\s*([MDR]+)\s*([+*!]?)\s*$/i.exec(v);
  if (!m || (m[1] && m[3])) throw new Error(`bad fragbits '${v}' (expected [+*!] and letters among M, D, R)`);
  let bits = 0;
  for (const c of m[2]!.toUpperCase()) bits |= c === 'M' ? 1 : c === 'D' ? 2 : 4;
  switch (m[1] || m[3]) {
    case '+':
      return (f) => (f & bits) === bits;
    case '*':
      return (f) => (f & bits) !== 0;
    case '!':
      return (f) => (f & bits) === 0;
    default:
      return (f) => (f & 7) === bits;
  }
}

/**
 * A numeric test: `n`, `<n`, `>n`, `<=n`, `>=n`, `!n`, `a<>b` / `a-b` (exclusive). `max`: the largest value
 * the field holds (ttl:>300 could never match: an error now, as in Snort 3's ranges).
 */
export function numTest(v: string, what = '', max = Number.MAX_SAFE_INTEGER): (n: number) => boolean {
  const s = v.replace(/\s+/g, '');
  const over = (x: string) => {
    if (Number(x) > max) throw new Error(`${what}: ${x} is past the field's largest value, ${max}`);
  };
  let m = /^(\d+)(?:<>|-)(\d+)$/.exec(s);
  if (m) {
    const [lo, hi] = [Number(m[1]), Number(m[2])];
    if (lo > hi) throw new Error(`numeric range '${v}' ends before it starts`);
    over(m[1]!);
    over(m[2]!);
    return (n) => n > lo && n < hi;
  }
  m = /^(<=|>=|<|>|=|!)?(\d+)$/.exec(s);
  if (!m) throw new Error(`bad numeric test '${v}'`);
  over(m[2]!);
  const k = Number(m[2]);
  switch (m[1]) {
    case '<':
      return (n) => n < k;
    case '>':
      return (n) => n > k;
    case '<=':
      return (n) => n <= k;
    case '>=':
      return (n) => n >= k;
    case '!':
      return (n) => n !== k;
    default:
      return (n) => n === k;
  }
}

/**
 * flags: TCP flag letters (F S R P A U C E in either case; 1 and 2 as C and E, Snort 2's names; 0 for none)
 * with `+*!` as in fragbits, then `,` and the flags to ignore (letters only). As Snort 3 (ips_flags.cc):
 * an empty test, an unknown letter in the mask (it was skipped, so the flag was tested after all) and a
 * third field are refused; lower-case letters, which Snort takes, were refused.
 */
export function flagsTest(v: string): (f: number) => boolean {
  const fields = v.split(',');
  if (fields.length > 2) throw new Error(`flags: expected FLAGS[,MASK], got '${v}'`);
  const [spec, maskSpec] = fields as [string, string | undefined];
  const bit: Record<string, number> = {
    F: 1,
    S: 2,
    R: 4,
    P: 8,
    A: 16,
    U: 32,
    C: 128,
    E: 64,
    '1': 128,
    '2': 64,
  };
  if (spec.trim() === '') throw new Error(`flags: no flags given (0 for none), got '${v}'`);
  let mode = '';
  let want = 0;
  for (const ch of spec.trim()) {
    if ('+*!'.includes(ch)) mode = ch;
    else if (ch === '0') want = 0;
    else if (bit[ch.toUpperCase()] === undefined)
      throw new Error(`flags: unknown flag '${ch}' in '${v}' (F S R P A U C E, 1 2, 0, and + * !)`);
    else want |= bit[ch.toUpperCase()]!;
  }
  let ignore = 0;
  if (maskSpec !== undefined) {
    if (maskSpec.trim() === '') throw new Error(`flags: an empty mask in '${v}'`);
    for (const ch of maskSpec.trim()) {
      const b = bit[ch.toUpperCase()];
      if (b === undefined)
        throw new Error(`flags: unknown flag '${ch}' in the mask of '${v}' (F S R P A U C E, 1 2)`);
      ignore |= b;
    }
  }
  return (f) => {
    const g = f & ~ignore;
    if (mode === '+') return (g & want) === want;
    if (mode === '*') return (g & want) !== 0;
    if (mode === '!') return (g & want) === 0;
    return g === want;
  };
}
