/**
 * Capture filters in the pcap-filter language (tcpdump's, which Snort's `--bpf` and Suricata's BPF filter
 * take), the part of it an IDS reading IP traffic is given, compiled to a test of a decoded packet:
 *
 *   expr      := and ('or' | '||') and ...
 *   and       := unary ('and' | '&&') unary ...
 *   unary     := ('not' | '!') unary | '(' expr ')' | primitive
 *   primitive := [ip | ip6 | tcp | udp] [src | dst | src or dst | src and dst] (host ADDR | net CIDR |
 *                port N | portrange N-M)
 *              | ip | ip6 | tcp | udp | icmp | icmp6 | vlan [N] | [ip | ip6] proto N
 *
 * As pcap-filter reads them: `host` and `net` test either address (`src`, `dst` one of them), `port` and
 * `portrange` either port of a TCP or UDP packet, `ip`/`ip6` before `host` or `net` the address family, `tcp`
 * or `udp` before `port` the protocol; a bare value after `and`/`or` takes the qualifiers of the primitive
 * before it (`host 10.0.0.1 or 10.0.0.2`, `tcp dst port 80 or 443`). Ports are numbers (no service
 * names); `net` takes a CIDR prefix or an address. Anything else (arp, ether, `less`, byte offsets) is an
 * error naming where, never a filter that means something else.
 */

import type { Decoded } from './decode.js';
import { addrBytesTest } from './netspec.js';

/** A filter that cannot be read: the message names the character where it went wrong. */
export class BpfSyntaxError extends Error {
  override name = 'BpfSyntaxError';
}

/** A compiled filter: whether a decoded packet passes. */
export type PacketFilter = (d: Decoded) => boolean;

/** Filter text read at most (a bound on what one error can point into and on the parse's depth). */
export const filterCharsMax = 4096;
/** Parentheses and `not`s nested at most. */
const nestingMax = 64;

type Dir = 'src' | 'dst' | 'src or dst' | 'src and dst';
type Kind = 'host' | 'net' | 'port' | 'portrange';
interface Qualifiers {
  family?: 4 | 6;
  proto?: 6 | 17;
  dir: Dir;
  kind: Kind;
}

/** Compiles `text` (see the module's comment); an empty text passes every packet. */
export function compileFilter(text: string): PacketFilter {
  if (typeof text !== 'string') throw new TypeError(`a capture filter is a string, got ${typeof text}`);
  if (text.length > filterCharsMax)
    throw new BpfSyntaxError(`filter: ${text.length} characters, more than ${filterCharsMax}`);
  const p = new Parser(text);
  if (p.done()) return () => true;
  const f = p.or(0);
  if (!p.done()) p.fail(`expected 'and', 'or' or the end, got '${p.peek()}'`);
  return f;
}

const tokenPattern = /\s*(\|\||&&|[()!]|[^\s()!|&]+|\S)/y;

class Parser {
  private readonly tokens: { text: string; at: number }[] = [];
  private i = 0;
  /** The qualifiers of the last primitive with a value, which a bare value after it takes. */
  private last: Qualifiers | undefined;

  constructor(private readonly src: string) {
    // every character but whitespace is some token (the pattern's last branch takes any one): the loop ends
    // at the end of the text
    tokenPattern.lastIndex = 0;
    for (let m = tokenPattern.exec(src); m; m = tokenPattern.exec(src))
      this.tokens.push({ text: m[1]!, at: m.index + m[0].length - m[1]!.length });
  }

  done(): boolean {
    return this.i >= this.tokens.length;
  }

  peek(): string {
    return this.tokens[this.i]?.text ?? '';
  }

  fail(msg: string): never {
    const at = this.tokens[this.i]?.at ?? this.src.length;
    throw new BpfSyntaxError(`filter at ${at + 1}: ${msg}`);
  }

  /** `fail` pointing at token `at` (a value taken already). */
  private failAt(at: number, msg: string): never {
    this.i = at;
    this.fail(msg);
  }

  private take(word?: string): string {
    const t = this.tokens[this.i];
    if (!t) this.fail(word ? `expected '${word}', got the end` : 'unexpected end');
    if (word !== undefined && t.text.toLowerCase() !== word) this.fail(`expected '${word}', got '${t.text}'`);
    this.i++;
    return t.text;
  }

  private is(...words: string[]): boolean {
    return words.includes(this.peek().toLowerCase());
  }

  or(depth: number): PacketFilter {
    let f = this.and(depth);
    while (this.is('or', '||')) {
      this.i++;
      const a = f;
      const b = this.and(depth);
      f = (d) => a(d) || b(d);
    }
    return f;
  }

  private and(depth: number): PacketFilter {
    let f = this.unary(depth);
    while (this.is('and', '&&')) {
      this.i++;
      const a = f;
      const b = this.unary(depth);
      f = (d) => a(d) && b(d);
    }
    return f;
  }

  private unary(depth: number): PacketFilter {
    if (depth > nestingMax) this.fail(`nested more than ${nestingMax} deep`);
    if (this.is('not', '!')) {
      this.i++;
      const a = this.unary(depth + 1);
      return (d) => !a(d);
    }
    if (this.is('(')) {
      this.i++;
      const f = this.or(depth + 1);
      this.take(')');
      return f;
    }
    return this.primitive();
  }

  private primitive(): PacketFilter {
    if (this.done()) this.fail('expected a primitive (host, net, port, tcp, ...), got the end');
    const word = this.peek().toLowerCase();
    // a bare value: the qualifiers of the primitive before it, or (the first) a host
    if (!keywords.has(word)) return this.valued(this.last ?? { dir: 'src or dst', kind: 'host' });
    let family: 4 | 6 | undefined;
    let proto: 6 | 17 | undefined;
    if (this.is('ip', 'ip6')) {
      family = this.take().toLowerCase() === 'ip' ? 4 : 6;
      if (this.is('proto')) return this.protoNumber(family);
      if (this.is('port', 'portrange')) this.notOfFamily(family, this.peek());
      if (!this.is('src', 'dst', 'host', 'net')) return (d) => d.ipVersion === family;
    } else if (this.is('tcp', 'udp')) {
      proto = this.take().toLowerCase() === 'tcp' ? 6 : 17;
      if (this.is('host', 'net')) this.notOfProto(proto, this.peek());
      if (!this.is('src', 'dst', 'port', 'portrange')) return (d) => d.proto === proto;
    } else if (this.is('icmp', 'icmp6')) {
      const n = this.take().toLowerCase() === 'icmp' ? 1 : 58;
      return (d) => d.proto === n;
    } else if (this.is('proto')) return this.protoNumber(undefined);
    else if (this.is('vlan')) {
      this.take();
      if (this.done() || keywords.has(this.peek().toLowerCase()) || !/^\d+$/.test(this.peek()))
        return (d) => d.vlans.length > 0;
      const id = this.number('a VLAN id', 4095);
      return (d) => d.vlans.includes(id);
    }
    let dir: Dir = 'src or dst';
    if (this.is('src', 'dst')) {
      dir = this.take().toLowerCase() as 'src' | 'dst';
      if (
        this.is('or', 'and') &&
        ['src', 'dst'].includes(this.tokens[this.i + 1]?.text.toLowerCase() ?? '')
      ) {
        const join = this.take().toLowerCase();
        const other = this.take().toLowerCase();
        if (other === dir) this.fail(`'${dir} ${join} ${other}': name src and dst`);
        dir = join === 'or' ? 'src or dst' : 'src and dst';
      }
    }
    // no type: a host, as pcap-filter reads `src 10.0.0.1` (after tcp or udp a type must be given)
    let kind: Kind = 'host';
    if (this.is('host', 'net', 'port', 'portrange')) kind = this.take().toLowerCase() as Kind;
    else if (proto !== undefined || this.done() || keywords.has(this.peek().toLowerCase()))
      this.fail(`expected host, net, port or portrange, got '${this.peek() || 'the end'}'`);
    if (proto !== undefined && (kind === 'host' || kind === 'net')) this.notOfProto(proto, kind);
    if (family !== undefined && (kind === 'port' || kind === 'portrange')) this.notOfFamily(family, kind);
    const q: Qualifiers = { dir, kind };
    if (family !== undefined) q.family = family;
    if (proto !== undefined) q.proto = proto;
    return this.valued(q);
  }

  /** The value of a host, net, port or portrange primitive with qualifiers `q`. */
  private valued(q: Qualifiers): PacketFilter {
    if (this.done()) this.fail(`expected the ${q.kind}'s value, got the end`);
    this.last = q;
    const dir = q.dir;
    if (q.kind === 'host' || q.kind === 'net') {
      const at = this.i;
      const text = this.take();
      if (q.kind === 'host' && text.includes('/'))
        this.failAt(at, `host '${text}': a host is one address (net takes a prefix)`);
      let test: (a: Uint8Array) => boolean;
      try {
        if (!/^[0-9a-fA-F.:/]+$/.test(text)) throw new Error('not an IPv4 or IPv6 address');
        test = addrBytesTest(text, {});
      } catch (e) {
        this.failAt(at, `${q.kind} '${text}': ${(e as Error).message} (no host names: give the address)`);
      }
      const family = q.family;
      return (d) =>
        (family === undefined || d.ipVersion === family) && byDir(dir, test(d.srcAddr), test(d.dstAddr));
    }
    let lo: number;
    let hi: number;
    if (q.kind === 'port') {
      lo = hi = this.number('a port number', 65535);
    } else {
      const at = this.i;
      const text = this.take();
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
      lo = m ? Number(m[1]) : Number.NaN;
      hi = m ? Number(m[2]) : Number.NaN;
      if (!(lo <= hi && hi <= 65535))
        this.failAt(at, `portrange '${text}': expected LOW-HIGH, ports from 0 to 65535, LOW at most HIGH`);
    }
    const proto = q.proto;
    // ports of a TCP or UDP packet (a datagram rebuilt from fragments has them)
    return (d) =>
      (proto === undefined ? d.proto === 6 || d.proto === 17 : d.proto === proto) &&
      byDir(dir, d.srcPort >= lo && d.srcPort <= hi, d.dstPort >= lo && d.dstPort <= hi);
  }

  /** `tcp host` and the like: a protocol qualifies ports, not addresses. */
  private notOfProto(proto: 6 | 17, kind: string): never {
    this.fail(
      `'${proto === 6 ? 'tcp' : 'udp'} ${kind}': a protocol qualifies port or portrange (ip or ip6 qualify host and net)`,
    );
  }

  /** `ip port` and the like: an address family qualifies addresses, not ports. */
  private notOfFamily(family: 4 | 6, kind: string): never {
    this.fail(
      `'${family === 4 ? 'ip' : 'ip6'} ${kind}': ip or ip6 qualify host or net (tcp or udp qualify port and portrange)`,
    );
  }

  private protoNumber(family: 4 | 6 | undefined): PacketFilter {
    this.take('proto');
    const n = this.number('a protocol number', 255);
    return (d) => (family === undefined || d.ipVersion === family) && d.proto === n;
  }

  private number(what: string, max: number): number {
    const at = this.i;
    const text = this.take();
    const n = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
    if (!(n <= max))
      this.failAt(
        at,
        `expected ${what} from 0 to ${max}, got '${text}'${/^[a-z-]+$/i.test(text) ? ' (no service names: give the number)' : ''}`,
      );
    return n;
  }
}

/** The source's test, the destination's, or both together, as `dir` says. */
function byDir(dir: Dir, src: boolean, dst: boolean): boolean {
  return dir === 'src' ? src : dir === 'dst' ? dst : dir === 'src or dst' ? src || dst : src && dst;
}

const keywords = new Set([
  'ip',
  'ip6',
  'tcp',
  'udp',
  'icmp',
  'icmp6',
  'proto',
  'vlan',
  'src',
  'dst',
  'host',
  'net',
  'port',
  'portrange',
  'and',
  'or',
  'not',
  '(',
  ')',
  '!',
  '&&',
  '||',
]);
