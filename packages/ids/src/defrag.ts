/**
 * IP defragmentation (IPv4, RFC 791 section 3.2; IPv6 fragment header, RFC 8200 section 4.5): fragments
 * are grouped by (version, source, destination, protocol, identification); when a datagram's pieces cover
 * [0, total) with the last fragment (more-fragments clear) seen, the datagram is rebuilt as one IP packet
 * (the first fragment's header, lengths and fragment fields fixed, IPv4 checksum recomputed; IPv6: the
 * fixed header with the fragment header removed) and decoded again.
 *
 * Overlapping fragments are resolved byte by byte with the same target-based rules as TCP overlaps
 * (`newDataWins` in stream.ts), after Novak, "Target-Based Fragmentation Reassembly" (Sourcefire, 2005),
 * the basis of Snort's frag3 `policy` and Suricata's defrag host-os-policy: e.g. `first` keeps the first
 * copy, `last` the latest, `bsd` and `windows` let a fragment that starts earlier win.
 *
 * Bounds: at most `datagramsMax` datagrams in progress (the oldest is dropped beyond it), `fragmentsMax`
 * fragments per datagram, 65,535 bytes per datagram (a fragment reaching past that is an anomaly: the
 * datagram is dropped), `bytesMax` bytes held in all; a datagram not complete within `timeoutUs` of its
 * first fragment is dropped. Every drop is counted by reason.
 */

import type { Decoded } from './decode.js';
import { copyBytes, newDataWins, type OverlapPolicy, overlapPolicies } from './stream.js';

export interface DefragOptions {
  policy?: OverlapPolicy;
  /** Datagrams being reassembled at once at most (default 4,096). */
  datagramsMax?: number;
  /** Fragments per datagram at most (default 256). */
  fragmentsMax?: number;
  /** Bytes held by all datagrams in progress at most (default 16 MiB). */
  bytesMax?: number;
  /** A datagram must complete within this of its first fragment (default 60 s, Suricata's defrag timeout). */
  timeoutUs?: number;
}

export interface DefragStats {
  fragments: number;
  reassembled: number;
  overlaps: number;
  dropped: {
    timeout: number;
    capacity: number;
    'too-many-fragments': number;
    oversized: number;
    memory: number;
    inconsistent: number;
  };
}

interface Piece {
  off: number;
  data: Uint8Array;
  os: number;
  oe: number;
}

interface Datagram {
  firstUs: number;
  pieces: Piece[];
  /** Payload length, known once the last fragment arrived (-1 before). */
  total: number;
  /** Header of the fragment at offset 0, once seen, and the link-layer bytes before it. */
  header: Uint8Array | undefined;
  link: Uint8Array;
  ipVersion: 4 | 6;
  proto: number;
  bytes: number;
  fragments: number;
}

/** Largest IP datagram payload (IPv4 total length is 16 bits). */
export const datagramBytesMax = 65535;

export class Defragmenter {
  private readonly datagrams = new Map<string, Datagram>();
  readonly policy: OverlapPolicy;
  readonly datagramsMax: number;
  readonly fragmentsMax: number;
  readonly bytesMax: number;
  readonly timeoutUs: number;
  private bytes = 0;
  readonly stats: DefragStats = {
    fragments: 0,
    reassembled: 0,
    overlaps: 0,
    dropped: {
      timeout: 0,
      capacity: 0,
      'too-many-fragments': 0,
      oversized: 0,
      memory: 0,
      inconsistent: 0,
    },
  };

  constructor(opts: DefragOptions = {}) {
    this.policy = opts.policy ?? 'windows';
    if (!overlapPolicies.includes(this.policy))
      throw new RangeError(`unknown overlap policy '${this.policy}'`);
    this.datagramsMax = opts.datagramsMax ?? 4096;
    this.fragmentsMax = opts.fragmentsMax ?? 256;
    this.bytesMax = opts.bytesMax ?? 16 * 2 ** 20;
    this.timeoutUs = opts.timeoutUs ?? 60e6;
    // NaN as a bound was no bound (datagrams, fragments, bytes) and as the timeout dropped every datagram
    // at its next fragment; 0 fragments or bytes (or fewer) rebuilt no datagram
    for (const k of ['datagramsMax', 'fragmentsMax', 'bytesMax'] as const)
      if (!Number.isSafeInteger(this[k]) || this[k] < 1)
        throw new RangeError(`defrag.${k} must be a whole number from 1, got ${String(opts[k])}`);
    if (typeof this.timeoutUs !== 'number' || !(this.timeoutUs > 0) || !Number.isFinite(this.timeoutUs))
      throw new RangeError(`defrag.timeoutUs must be microseconds > 0, got ${String(opts.timeoutUs)}`);
  }

  /** Datagrams in progress. */
  get pending(): number {
    return this.datagrams.size;
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.bytes;
  }

  private drop(key: string, why: keyof DefragStats['dropped']): void {
    const g = this.datagrams.get(key);
    if (!g) return;
    this.datagrams.delete(key);
    this.bytes -= g.bytes;
    this.stats.dropped[why]++;
  }

  /** Drops datagrams older than the timeout (oldest first: the map keeps insertion order). */
  expire(nowUs: number): void {
    for (const [k, g] of this.datagrams) {
      if (nowUs - g.firstUs <= this.timeoutUs) break;
      this.drop(k, 'timeout');
    }
  }

  /**
   * Adds a fragment (a decoded packet with `frag` set); returns the rebuilt datagram as raw IP bytes
   * (decode it with link type 101) when this fragment completed it.
   */
  add(d: Decoded, nowUs: number): Uint8Array | undefined {
    const f = d.frag;
    if (!f) return undefined;
    this.stats.fragments++;
    this.expire(nowUs);
    // the VLAN ids too: the same addresses in two VLANs are two hosts (and a datagram routed between
    // VLANs is captured twice), as Suricata's defragmenter keys its trackers
    const key = `${d.ipVersion}|${d.src}|${d.dst}|${d.proto}|${f.id}|${d.vlans.length === 0 ? '' : d.vlans.join('.')}`;
    let g = this.datagrams.get(key);
    if (!g) {
      if (this.datagrams.size >= this.datagramsMax) {
        const oldest = this.datagrams.keys().next().value as string;
        this.drop(oldest, 'capacity');
      }
      g = {
        firstUs: nowUs,
        pieces: [],
        total: -1,
        header: undefined,
        link: new Uint8Array(0),
        ipVersion: d.ipVersion,
        proto: d.proto,
        bytes: 0,
        fragments: 0,
      };
      this.datagrams.set(key, g);
    }
    const start = f.offset;
    const end = start + d.payload.length;
    if (end > datagramBytesMax) {
      this.drop(key, 'oversized');
      return undefined;
    }
    if (++g.fragments > this.fragmentsMax) {
      this.drop(key, 'too-many-fragments');
      return undefined;
    }
    if (!f.more) {
      if ((g.total >= 0 && g.total !== end) || g.pieces.some((p) => p.off + p.data.length > end)) {
        this.drop(key, 'inconsistent');
        return undefined;
      }
      g.total = end;
    } else if (g.total >= 0 && end > g.total) {
      this.drop(key, 'inconsistent');
      return undefined;
    }
    if (start === 0) {
      g.header = Uint8Array.from(f.header);
      g.link = Uint8Array.from(f.link);
    }
    if (!this.place(g, start, d.payload)) {
      this.drop(key, 'memory');
      return undefined;
    }
    // the pieces are disjoint and, once the last fragment told the length, all inside it (the rest was
    // dropped as inconsistent): the datagram is whole when their bytes add up to its length
    if (g.total < 0 || !g.header || g.bytes < g.total) return undefined;
    this.datagrams.delete(key);
    this.bytes -= g.bytes;
    this.stats.reassembled++;
    const whole = build(g);
    const frame = new Uint8Array(g.link.length + whole.length);
    frame.set(g.link);
    frame.set(whole, g.link.length);
    this.lastFrame = frame;
    return whole;
  }

  /** The last datagram rebuilt, behind the first fragment's link-layer bytes (what eve's `packet` shows). */
  lastFrame: Uint8Array | undefined;

  /** Puts a fragment's bytes in place, resolving overlaps with the policy; false when out of memory. */
  private place(g: Datagram, start: number, data: Uint8Array): boolean {
    const end = start + data.length;
    const fresh: Piece[] = [];
    let cursor = start;
    // the pieces are in offset order and disjoint, so their ends are in order too: the first that ends
    // after `start` found by halving, and the ones it overlaps follow it (a fragment looked at every piece
    // before: quadratic in a datagram's fragments, up to 256 of them)
    const pieces = g.pieces;
    let lo = 0;
    let hi = pieces.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const q = pieces[mid]!;
      if (q.off + q.data.length <= start) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < pieces.length; k++) {
      const p = pieces[k]!;
      if (p.off >= end) break;
      const pEnd = p.off + p.data.length;
      if (p.off > cursor)
        fresh.push({ off: cursor, data: copyBytes(data, cursor - start, p.off - start), os: start, oe: end });
      const ovStart = Math.max(cursor, p.off);
      const ovEnd = Math.min(end, pEnd);
      this.stats.overlaps++;
      if (newDataWins(this.policy, start, end, p.os, p.oe))
        p.data.set(data.subarray(ovStart - start, ovEnd - start), ovStart - p.off);
      cursor = ovEnd;
    }
    if (cursor < end) fresh.push({ off: cursor, data: copyBytes(data, cursor - start), os: start, oe: end });
    const n = fresh.reduce((s, p) => s + p.data.length, 0);
    if (this.bytes + n > this.bytesMax) return false;
    this.bytes += n;
    g.bytes += n;
    // each new piece into its place among the pieces (kept in offset order): shifted in place, where a sort
    // with a comparator copied the whole list once per fragment
    for (const p of fresh) {
      let i = pieces.length;
      pieces.push(p);
      while (i > 0 && pieces[i - 1]!.off > p.off) {
        pieces[i] = pieces[i - 1]!;
        i--;
      }
      pieces[i] = p;
    }
    return true;
  }
}

/** The whole datagram as one IP packet. */
function build(g: Datagram): Uint8Array {
  const h = g.header!;
  const out = new Uint8Array(h.length + g.total);
  out.set(h, 0);
  for (const p of g.pieces) out.set(p.data.subarray(0, Math.max(0, g.total - p.off)), h.length + p.off);
  if (g.ipVersion === 4) {
    const len = h.length + g.total;
    out[2] = len >> 8;
    out[3] = len & 0xff;
    out[6] = 0;
    out[7] = 0;
    out[10] = 0;
    out[11] = 0;
    let sum = 0;
    for (let i = 0; i < h.length; i += 2) sum += (out[i]! << 8) | out[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    out[10] = c >> 8;
    out[11] = c & 0xff;
  } else {
    out[4] = g.total >> 8;
    out[5] = g.total & 0xff;
    out[6] = g.proto; // the fragment header (and any header before it) is gone
  }
  return out;
}
