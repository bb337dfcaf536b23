/**
 * Packet decoding: link layers Ethernet (1), raw IP (101, 12, 14, 228, 229), PPP (9), Linux cooked SLL
 * (113) and SLL2 (276);
 * 802.1Q / QinQ VLAN tags; NSH (RFC 8300) carrying IPv4, IPv6 or Ethernet; IPv4 (options, header checksum) and IPv6 (extension headers); TCP, UDP, ICMP,
 * ICMPv6. A packet that is truncated or malformed is counted by reason and skipped, never thrown.
 * Fragments are recognised (IPv4 offset/more-fragments, the IPv6 fragment header) and handed out with their
 * place in the datagram, not decoded further; `Defragmenter` (defrag.ts) puts datagrams back together.
 */

import { type WasmWordSum, wasmWordSum } from './scan-wasm.js';

export interface Decoded {
  ipVersion: 4 | 6;
  /** Source and destination addresses as text (IPv6 compressed, RFC 5952). */
  readonly src: string;
  readonly dst: string;
  /**
   * Raw source and destination addresses (4 or 16 bytes). In a {@link PacketRecord} they are the record's
   * own, overwritten by its next packet: whatever keeps them copies them.
   */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  proto: number;
  ttl: number;
  /** IPv4 identification and flags (4 reserved, 2 don't fragment, 1 more fragments); 0 for IPv6. */
  ipId: number;
  ipFlags: number;
  srcPort: number;
  dstPort: number;
  tcpFlags: number;
  seq: number;
  ack: number;
  icmpType: number;
  icmpCode: number;
  /** ICMP header bytes 4..7 as identifier and sequence (echo and the like). */
  icmpId: number;
  icmpSeq: number;
  /** Transport payload. */
  payload: Uint8Array;
  fragment: boolean;
  /** For a fragment (`fragment` true): where it goes in its datagram; `payload` holds its data. */
  frag?: FragmentInfo;
  ipChecksumOk: boolean;
  /** IPv4 option types present in the header (0 end of list, 1 no-op, 7 record route, ...). */
  ipOptions: number[];
  /** TCP/UDP checksum over the pseudo-header; true when absent (UDP over IPv4) or not checkable (snaplen). */
  l4ChecksumOk: boolean;
  /** Offset of the TCP header in the decoded bytes (to fix its checksum when a payload is rewritten). */
  l4Offset?: number;
  /** Offset of the IP header in the decoded bytes (`decode` sets it; reject responses quote from it). */
  ipOffset?: number;
  vlans: number[];
  /**
   * Encapsulations undone to reach this IP header (IP in IP, GRE, VXLAN, Geneve, GTP-U, Teredo: see
   * `ipTunnel` and `udpTunnel`): the addresses, ports and payload are the innermost packet's, as Snort 3 and
   * Suricata inspect it.
   */
  tunnels: number;
}

/**
 * A decoded packet that one decoder reuses for every packet (`decodeInto`): nothing of it outlives the
 * next packet, so the packet path allocates no object, address view or address text per packet. Its
 * addresses are copied into its own buffers (`srcAddr`, `dstAddr`); their text (`src`, `dst`) is made on
 * first read (alerts, FTP, defragmentation keys), once per packet. `payload` and a fragment's views point
 * into the decoded bytes. Whatever keeps any of it past the packet must copy it. `src` and `dst` are
 * getters: a spread copy (`{ ...d }`) has neither.
 */
export class PacketRecord implements Decoded {
  ipVersion: 4 | 6 = 4;
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  proto = 0;
  ttl = 0;
  ipId = 0;
  ipFlags = 0;
  srcPort = 0;
  dstPort = 0;
  tcpFlags = 0;
  /**
   * 0 as a double (-0; `reset` stores +0): sequence numbers are 32-bit, from 2^30 on not small integers, and
   * a field that began with a small one changed representation at the first such number, which deprecated
   * the record's shape: the next engine's Pipeline then held a record of the new shape where the optimized
   * packet path (push, prepare, inspectPrepared) had the old one, and all of it was deoptimized at once.
   */
  seq = -0;
  ack = -0;
  icmpType = 0;
  icmpCode = 0;
  icmpId = 0;
  icmpSeq = 0;
  payload: Uint8Array = noBytes;
  fragment = false;
  frag: FragmentInfo | undefined = undefined;
  ipChecksumOk = true;
  ipOptions: number[] = noOptions;
  l4ChecksumOk = true;
  l4Offset: number | undefined = undefined;
  ipOffset: number | undefined = undefined;
  vlans: number[] = noVlans;
  tunnels = 0;
  private readonly src4 = new Uint8Array(4);
  private readonly dst4 = new Uint8Array(4);
  private readonly src6 = new Uint8Array(16);
  private readonly dst6 = new Uint8Array(16);
  private srcText: string | undefined = undefined;
  private dstText: string | undefined = undefined;

  constructor() {
    this.srcAddr = this.src4;
    this.dstAddr = this.dst4;
  }

  get src(): string {
    return (this.srcText ??= addrText(this.srcAddr));
  }

  get dst(): string {
    return (this.dstText ??= addrText(this.dstAddr));
  }

  /**
   * Starts a packet: the addresses copied from `b` at `sa` and `da`, and the fields a packet may leave unset
   * back to their defaults. The IP header's fields (`proto`, `ttl`, `ipId`, `ipFlags`, `fragment`,
   * `ipOffset`, `vlans`) are not reset: the decoder sets every one of them right after.
   */
  reset(ipVersion: 4 | 6, b: Uint8Array, sa: number, da: number): void {
    this.ipVersion = ipVersion;
    const n = ipVersion === 4 ? 4 : 16;
    const s = ipVersion === 4 ? this.src4 : this.src6;
    const d = ipVersion === 4 ? this.dst4 : this.dst6;
    for (let i = 0; i < n; i++) {
      s[i] = b[sa + i]!;
      d[i] = b[da + i]!;
    }
    this.srcAddr = s;
    this.dstAddr = d;
    this.srcText = undefined;
    this.dstText = undefined;
    this.srcPort = 0;
    this.dstPort = 0;
    this.tcpFlags = 0;
    this.seq = 0;
    this.ack = 0;
    this.icmpType = 0;
    this.icmpCode = 0;
    this.icmpId = 0;
    this.icmpSeq = 0;
    this.payload = noBytes;
    this.frag = undefined;
    this.ipChecksumOk = true;
    this.ipOptions = noOptions;
    this.l4ChecksumOk = true;
    this.l4Offset = undefined;
  }
}

/** An address's text: dotted IPv4, or IPv6 with the longest run of zero groups compressed. */
function addrText(a: Uint8Array): string {
  return a.length === 4 ? ipv4(a, 0) : ipv6(a, 0);
}

export interface FragmentInfo {
  /** IPv4 identification (16 bits) or IPv6 fragment header identification (32 bits). */
  id: number;
  /** Byte offset of this fragment's data in the datagram's payload. */
  offset: number;
  more: boolean;
  /** The IP header to rebuild the datagram from: IPv4 with options, or IPv6's fixed 40 bytes. */
  header: Uint8Array;
  /** The frame's bytes before the IP header (link layer, VLAN tags...). */
  link: Uint8Array;
}

export type DecodeFailure =
  | 'truncated-link'
  | 'not-ip'
  | 'truncated-ip'
  | 'bad-ip-header'
  | 'truncated-transport'
  | 'unsupported-link'
  | 'bad-fragment';

export interface DecodeStats {
  packets: number;
  decoded: number;
  fragments: number;
  /** Packets decoded through at least one encapsulation (`Decoded.tunnels`). */
  tunneled: number;
  failures: Record<DecodeFailure, number>;
}

export function newDecodeStats(): DecodeStats {
  return {
    packets: 0,
    decoded: 0,
    fragments: 0,
    tunneled: 0,
    failures: {
      'truncated-link': 0,
      'not-ip': 0,
      'truncated-ip': 0,
      'bad-ip-header': 0,
      'truncated-transport': 0,
      'unsupported-link': 0,
      'bad-fragment': 0,
    },
  };
}

export const Proto = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

function ipv4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6(b: Uint8Array, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[o + i]! << 8) | b[o + i + 1]!).toString(16));
  // compress the longest run of zero groups
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

/** The Internet checksum (RFC 1071) of `len` bytes of `b` from `o`. */
export function checksum16(b: Uint8Array, o: number, len: number): number {
  let sum = wordSum(b, o, o + len);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Decodes one captured frame into a new record; returns the reason on failure (and counts it). */
export function decode(linkType: number, b: Uint8Array, stats: DecodeStats): Decoded | DecodeFailure {
  return decodeInto(new PacketRecord(), linkType, b, stats);
}

/**
 * Decodes one captured frame into `r` (its fields from the last packet all overwritten); returns `r`, or
 * the reason on failure (counted; `r` then holds nothing to use). With `l4Checksum` false the TCP/UDP
 * checksum is not computed (`l4ChecksumOk` stays true): the sum over every payload byte is most of what
 * decoding costs, and is not needed where checksums are not validated or are checked elsewhere.
 * `tunnelsBefore`: the encapsulations undone to reach `b` (a datagram rebuilt from fragments that came
 * through a tunnel: `Decoded.tunnels` counts them too, and fewer are undone in it).
 */
export function decodeInto(
  r: PacketRecord,
  linkType: number,
  b: Uint8Array,
  stats: DecodeStats,
  l4Checksum = true,
  tunnelsBefore = 0,
): PacketRecord | DecodeFailure {
  stats.packets++;
  const why = decodeInner(r, linkType, b, l4Checksum, tunnelsBefore);
  if (why !== undefined) {
    stats.failures[why]++;
    return why;
  }
  stats.decoded++;
  if (r.fragment) stats.fragments++;
  if (r.tunnels > 0) stats.tunneled++;
  return r;
}

/** The payload until the transport layer is decoded; no IPv4 options; no VLAN tags (shared, never changed). */
const noBytes = new Uint8Array(0);
const noOptions: number[] = [];
const noVlans: number[] = [];

/** A view of `b` from `start` to `end`: a plain Uint8Array (a Buffer's own subarray costs more). */
function view(b: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + start, end - start);
}

function decodeInner(
  d: PacketRecord,
  linkType: number,
  b: Uint8Array,
  l4Checksum: boolean,
  tunnelsBefore: number,
): DecodeFailure | undefined {
  let o = 0;
  let etherType = 0;
  if (linkType === 1) {
    if (b.length < 14) return 'truncated-link';
    etherType = (b[12]! << 8) | b[13]!;
    o = 14;
  } else if (linkType === 113) {
    if (b.length < 16) return 'truncated-link';
    etherType = (b[14]! << 8) | b[15]!;
    o = 16;
  } else if (linkType === 276) {
    if (b.length < 20) return 'truncated-link';
    etherType = (b[0]! << 8) | b[1]!;
    o = 20;
  } else if (linkType === 101 || linkType === 12 || linkType === 14 || linkType === 228 || linkType === 229) {
    if (b.length < 1) return 'truncated-link';
    etherType = b[0]! >> 4 === 6 ? 0x86dd : 0x0800;
  } else if (linkType === 9) {
    const inner = pppAt(b, 0, b.length);
    if (typeof inner === 'string') return inner;
    ({ etherType, o } = inner);
  } else return 'unsupported-link';
  const why = linkHeaders(b, o, etherType, noVlans);
  if (why !== undefined) return why;
  return ipLayers(d, b, walkO, walkType, walkVlans, l4Checksum, tunnelsBefore);
}

/** Where `linkHeaders` stopped: the ethertype of the header at `walkO`, and the VLAN ids met on the way. */
let walkType = 0;
let walkO = 0;
let walkVlans: number[] = noVlans;

/**
 * The link layer's headers from `o` (of `etherType`) on, in the captured frame or in an Ethernet frame an
 * encapsulation carries: VLAN tags (pushed onto `vlans`, or a new array for the first), NSH, a PPPoE
 * session, Cisco FabricPath, VN-Tag, E-Tag and MPLS, to the first other ethertype, left in `walkType` and
 * `walkO` (`walkVlans`: the tags): module fields, so that a frame with none costs no object. A failure when
 * a header is cut short or carries what is not IP.
 */
function linkHeaders(
  b: Uint8Array,
  o: number,
  etherType: number,
  vlans: number[],
): DecodeFailure | undefined {
  for (let guard = 0; guard < 8; guard++) {
    if (etherType === 0x8100 || etherType === 0x88a8 || etherType === 0x9100) {
      if (b.length < o + 4) return 'truncated-link';
      if (vlans === noVlans) vlans = [];
      vlans.push(((b[o]! << 8) | b[o + 1]!) & 0x0fff);
      etherType = (b[o + 2]! << 8) | b[o + 3]!;
      o += 4;
    } else if (etherType === 0x894f) {
      // NSH (RFC 8300): length in 4-byte words, then the next protocol: 1 IPv4, 2 IPv6, 3 Ethernet
      if (b.length < o + 8) return 'truncated-link';
      const len = (b[o + 1]! & 0x3f) * 4;
      const next = b[o + 3]!;
      if (len < 8 || b.length < o + len) return 'truncated-link';
      o += len;
      const inner = next === 1 ? { etherType: 0x0800, o } : next === 2 ? { etherType: 0x86dd, o } : undefined;
      const carried = next === 3 ? ethernetAt(b, o, b.length) : inner;
      if (!carried) return next === 3 ? 'truncated-link' : 'not-ip';
      ({ etherType, o } = carried);
    } else if (etherType === 0x8864) {
      // PPPoE session (RFC 2516): a 6-byte header, then PPP
      const inner = pppAt(b, o + 6, b.length);
      if (typeof inner === 'string') return inner;
      ({ etherType, o } = inner);
    } else if (etherType === 0x8903) {
      // Cisco FabricPath: the outer addresses and this ethertype, 2 bytes of FTag and TTL, then the frame
      const carried = ethernetAt(b, o + 2, b.length);
      if (!carried) return 'truncated-link';
      ({ etherType, o } = carried);
    } else if (etherType === 0x8926 || etherType === 0x893f) {
      // VN-Tag (4 bytes) and IEEE 802.1BR E-Tag (6 bytes), each followed by the next ethertype
      const len = etherType === 0x8926 ? 4 : 6;
      if (b.length < o + len + 2) return 'truncated-link';
      etherType = (b[o + len]! << 8) | b[o + len + 1]!;
      o += len + 2;
    } else if (etherType === 0x8847 || etherType === 0x8848) {
      // MPLS (RFC 3032): labels up to the bottom of the stack, then IPv4 or IPv6 by the version nibble, or
      // a pseudowire's control word (first nibble 0, RFC 4385) and Ethernet
      let bottom = false;
      for (let n = 0; n < 8 && !bottom; n++) {
        if (b.length < o + 4) return 'truncated-link';
        bottom = (b[o + 2]! & 1) === 1;
        o += 4;
      }
      if (!bottom || b.length < o + 1) return 'truncated-link';
      const nibble = b[o]! >> 4;
      const inner =
        nibble === 4 ? { etherType: 0x0800, o } : nibble === 6 ? { etherType: 0x86dd, o } : undefined;
      const carried = nibble === 0 ? ethernetAt(b, o + 4, b.length) : inner;
      if (!carried) return nibble === 0 ? 'truncated-link' : 'not-ip';
      ({ etherType, o } = carried);
    } else break;
  }
  walkType = etherType;
  walkO = o;
  walkVlans = vlans;
  return undefined;
}

/** Encapsulations undone at most in one frame (`Decoded.tunnels`); a packet nested deeper is inspected there. */
export const tunnelDepthMax = 4;

/** Where an encapsulated packet starts and what it is (an ethertype: IPv4, IPv6, or VLAN tags and on). */
interface Inner {
  etherType: number;
  o: number;
}

/**
 * A PPP frame at `q` (RFC 1661: the address and control bytes ff 03 optional, the protocol one byte when
 * compressed, RFC 1661 6.5) carrying IPv4 (0x21) or IPv6 (0x57) as an `Inner`; else why not. The PPP link
 * type (9), PPPoE sessions and GRE's PPP read it.
 */
function pppAt(b: Uint8Array, q: number, end: number): Inner | 'truncated-link' | 'not-ip' {
  if (q + 2 <= end && b[q] === 0xff && b[q + 1] === 0x03) q += 2;
  if (q + 1 > end) return 'truncated-link';
  let proto = b[q]!;
  if ((proto & 1) === 0) {
    if (q + 2 > end) return 'truncated-link';
    proto = (proto << 8) | b[q + 1]!;
    q += 2;
  } else q += 1;
  if (proto === 0x21) return { etherType: 0x0800, o: q };
  return proto === 0x57 ? { etherType: 0x86dd, o: q } : 'not-ip';
}

/** An Ethernet frame at `q` (before `end`) as an `Inner`: its ethertype and where its payload starts. */
function ethernetAt(b: Uint8Array, q: number, end: number): Inner | undefined {
  return q + 14 <= end ? { etherType: (b[q + 12]! << 8) | b[q + 13]!, o: q + 14 } : undefined;
}

/**
 * The packet an IP payload at [p, end) of protocol `proto` carries: IPv4 in IP (4), IPv6 in IP (41), or
 * GRE (47, RFC 2784/2890: version 0, optional checksum, key and sequence) carrying IPv4, IPv6, PPP
 * (0x880b, also in PPTP's version 1), Ethernet (0x6558) or ERSPAN (0x88be: type I bare, type II with its
 * 8-byte header; 0x22eb: type III, 12 bytes and its optional 8-byte subheader) with Ethernet in it.
 * Undefined for anything else (inspected as it is).
 */
function ipTunnel(b: Uint8Array, p: number, end: number, proto: number): Inner | undefined {
  if (proto === 4) return { etherType: 0x0800, o: p };
  if (proto === 41) return { etherType: 0x86dd, o: p };
  if (proto !== 47 || p + 4 > end) return undefined;
  const flags = b[p]!;
  const version = b[p + 1]! & 7;
  if (version > 1 || (flags & 0x40) !== 0) return undefined; // source routing (RFC 1701) not followed
  const pt = (b[p + 2]! << 8) | b[p + 3]!;
  // version 1 is PPTP's (RFC 2637 4.1): a key always, an acknowledgment number when its A flag is set
  let q = p + 4 + (flags & 0x80 ? 4 : 0) + (flags & 0x20 ? 4 : 0) + (flags & 0x10 ? 4 : 0);
  if (version === 1) q += b[p + 1]! & 0x80 ? 4 : 0;
  if (q > end) return undefined;
  if (pt === 0x880b) {
    const inner = pppAt(b, q, end);
    return typeof inner === 'string' ? undefined : inner;
  }
  if (version !== 0) return undefined;
  if (pt === 0x0800 || pt === 0x86dd) return { etherType: pt, o: q };
  if (pt === 0x6558) return ethernetAt(b, q, end);
  if (pt === 0x88be) return ethernetAt(b, flags & 0x10 ? q + 8 : q, end);
  if (pt === 0x22eb) {
    if (q + 12 > end) return undefined;
    q += 12 + (b[q + 11]! & 1 ? 8 : 0);
    return ethernetAt(b, q, end);
  }
  return undefined;
}

/**
 * The packet a UDP payload at [p, end) carries by its ports: VXLAN (4789, RFC 7348: the I flag, then
 * Ethernet), Geneve (6081, RFC 8926: version 0, options, then its protocol type), GTP-U (2152 either side)
 * or Teredo (3544 either side, RFC 4380: after the optional authentication and origin indication, an IPv6
 * packet that fills the datagram exactly). Undefined when the payload is not such a packet (it is
 * inspected as UDP).
 */
function udpTunnel(b: Uint8Array, p: number, end: number, sp: number, dp: number): Inner | undefined {
  if (dp === 4789) return end - p >= 8 && (b[p]! & 0x08) !== 0 ? ethernetAt(b, p + 8, end) : undefined;
  if (dp === 6081) {
    if (end - p < 8 || b[p]! >> 6 !== 0) return undefined;
    const q = p + 8 + (b[p]! & 0x3f) * 4;
    const pt = (b[p + 2]! << 8) | b[p + 3]!;
    if (q > end) return undefined;
    if (pt === 0x0800 || pt === 0x86dd) return { etherType: pt, o: q };
    return pt === 0x6558 ? ethernetAt(b, q, end) : undefined;
  }
  if (dp === 2152 || sp === 2152) {
    // GTP-U (3GPP TS 29.281): version 1, a G-PDU (type 255), optional fields and extension headers, then
    // the user's IPv4 or IPv6 packet
    if (end - p < 8 || b[p]! >> 5 !== 1 || b[p + 1] !== 0xff) return undefined;
    const flags = b[p]!;
    let q = p + 8;
    if (flags & 0x07) {
      q += 4;
      // extension headers: a length in 4-byte units, the next type in the last byte (0: none)
      for (let next = flags & 0x04 ? b[q - 1]! : 0, n = 0; next !== 0 && n < 8; n++) {
        if (q >= end || b[q] === 0) return undefined;
        q += b[q]! * 4;
        if (q > end) return undefined;
        next = b[q - 1]!;
      }
    }
    if (q >= end) return undefined;
    const v = b[q]! >> 4;
    return v === 4 ? { etherType: 0x0800, o: q } : v === 6 ? { etherType: 0x86dd, o: q } : undefined;
  }
  if (sp !== 3544 && dp !== 3544) return undefined;
  let q = p;
  if (q + 4 <= end && b[q] === 0 && b[q + 1] === 1) q += 4 + b[q + 2]! + b[q + 3]! + 9; // authentication
  if (q + 2 <= end && b[q] === 0 && b[q + 1] === 0) q += 8; // origin indication
  if (q + 40 > end || b[q]! >> 4 !== 6 || q + 40 + ((b[q + 4]! << 8) | b[q + 5]!) !== end) return undefined;
  return { etherType: 0x86dd, o: q };
}

/**
 * The IP layers from `o` (of `etherType`), through any encapsulations (an encapsulated Ethernet frame's own
 * link headers too: `linkHeaders`), to the transport.
 */
function ipLayers(
  d: PacketRecord,
  b: Uint8Array,
  o: number,
  etherType: number,
  vlans: number[],
  l4Checksum: boolean,
  tunnelsBefore: number,
): DecodeFailure | undefined {
  let carrier = -1;
  let carrierO = o;
  let carrierType = etherType;
  let carrierVlans = vlans;
  for (let tunnels = tunnelsBefore; ; tunnels++) {
    const inner = ipLayer(d, b, o, etherType, vlans, l4Checksum, tunnels, tunnels < tunnelDepthMax);
    if (inner === undefined) return undefined;
    if (typeof inner === 'string') {
      if (carrier < 0) return inner;
      break;
    }
    carrier = tunnels;
    carrierO = o;
    carrierType = etherType;
    carrierVlans = vlans === noVlans ? vlans : vlans.slice();
    if (linkHeaders(b, inner.o, inner.etherType, vlans) !== undefined) break;
    o = walkO;
    etherType = walkType;
    vlans = walkVlans;
  }
  // what a carrier carries is not IP (ARP in VXLAN) or will not decode: the carrier is inspected, as it
  // was before tunnels were followed
  return ipLayer(d, b, carrierO, carrierType, carrierVlans, l4Checksum, carrier, false) as
    | DecodeFailure
    | undefined;
}

/**
 * One IP header at `o` and what it carries: the transport decoded into `d` (undefined), a failure, or the
 * packet it encapsulates (`Inner`, while fewer than tunnelDepthMax were undone).
 */
function ipLayer(
  d: PacketRecord,
  b: Uint8Array,
  o: number,
  etherType: number,
  vlans: number[],
  l4Checksum: boolean,
  tunnels: number,
  /** Whether an encapsulated packet is followed (else the transport is decoded as it is). */
  deeper: boolean,
): DecodeFailure | Inner | undefined {
  if (etherType === 0x0800) {
    if (b.length < o + 20) return 'truncated-ip';
    if (b[o]! >> 4 !== 4) return 'bad-ip-header';
    const ihl = (b[o]! & 0x0f) * 4;
    let total = (b[o + 2]! << 8) | b[o + 3]!;
    // a total length of 0: segmentation offload (TSO) captured on the sending host; the frame holds it all
    if (total === 0) total = b.length - o;
    if (ihl < 20 || total < ihl) return 'bad-ip-header';
    if (b.length < o + ihl) return 'truncated-ip';
    const end = Math.min(b.length, o + total);
    const fragField = (b[o + 6]! << 8) | b[o + 7]!;
    const fragment = (fragField & 0x1fff) !== 0 || (fragField & 0x2000) !== 0;
    d.reset(4, b, o + 12, o + 16);
    d.proto = b[o + 9]!;
    d.ttl = b[o + 8]!;
    d.ipId = (b[o + 4]! << 8) | b[o + 5]!;
    d.ipFlags = b[o + 6]! >> 5;
    d.fragment = fragment;
    d.ipChecksumOk = checksum16(b, o, ihl) === 0;
    if (ihl > 20) d.ipOptions = ipv4Options(b, o + 20, o + ihl);
    d.ipOffset = o;
    d.vlans = vlans;
    d.tunnels = tunnels;
    if (fragment) {
      d.payload = view(b, o + ihl, end);
      d.frag = {
        id: (b[o + 4]! << 8) | b[o + 5]!,
        offset: (fragField & 0x1fff) * 8,
        more: (fragField & 0x2000) !== 0,
        header: view(b, o, o + ihl),
        link: view(b, 0, o),
      };
      return undefined;
    }
    const inner = deeper ? ipTunnel(b, o + ihl, end, d.proto) : undefined;
    if (inner) return inner;
    const why = transport(d, b, o + ihl, end);
    if (why === undefined && deeper && d.proto === Proto.UDP) {
      const carried = udpTunnel(b, end - d.payload.length, end, d.srcPort, d.dstPort);
      if (carried) return carried;
    }
    // the capture holds the whole datagram: the transport checksum can be checked
    if (l4Checksum && why === undefined && b.length >= o + total)
      d.l4ChecksumOk = l4ChecksumOk(d, b, o + ihl, end);
    return why;
  }
  if (etherType === 0x86dd) {
    if (b.length < o + 40) return 'truncated-ip';
    if (b[o]! >> 4 !== 6) return 'bad-ip-header';
    const plen = (b[o + 4]! << 8) | b[o + 5]!;
    const end = Math.min(b.length, o + 40 + plen);
    let next = b[o + 6]!;
    let p = o + 40;
    let fragment = false;
    let fragId = 0;
    let fragOffset = 0;
    let fragMore = false;
    // extension headers: hop-by-hop 0, routing 43, fragment 44, destination options 60, AH 51
    for (
      let guard = 0;
      guard < 16 && (next === 0 || next === 43 || next === 44 || next === 60 || next === 51);
      guard++
    ) {
      if (p + 8 > end) return 'truncated-ip';
      const nh = b[p]!;
      let len: number;
      if (next === 44) {
        const offField = (b[p + 2]! << 8) | b[p + 3]!;
        len = 8;
        // an atomic fragment (offset 0, no more: RFC 6946) is a whole datagram
        if ((offField & 0xfff8) !== 0 || (offField & 1) !== 0) {
          fragment = true;
          fragId = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
          fragOffset = offField & 0xfff8;
          fragMore = (offField & 1) !== 0;
          next = nh;
          p += len;
          break;
        }
      } else if (next === 51) len = (b[p + 1]! + 2) * 4;
      else len = (b[p + 1]! + 1) * 8;
      next = nh;
      p += len;
    }
    if (p > end) return 'truncated-ip';
    d.reset(6, b, o + 8, o + 24);
    d.proto = next;
    d.ttl = b[o + 7]!;
    d.ipId = 0;
    d.ipFlags = 0;
    d.fragment = fragment;
    d.ipOffset = o;
    d.vlans = vlans;
    d.tunnels = tunnels;
    if (fragment) {
      d.frag = {
        id: fragId,
        offset: fragOffset,
        more: fragMore,
        header: view(b, o, o + 40),
        link: view(b, 0, o),
      };
      d.payload = view(b, p, end);
      return undefined;
    }
    const inner = deeper ? ipTunnel(b, p, end, next) : undefined;
    if (inner) return inner;
    const why = transport(d, b, p, end);
    if (why === undefined && deeper && d.proto === Proto.UDP) {
      const carried = udpTunnel(b, end - d.payload.length, end, d.srcPort, d.dstPort);
      if (carried) return carried;
    }
    if (l4Checksum && why === undefined && b.length >= o + 40 + plen)
      d.l4ChecksumOk = l4ChecksumOk(d, b, p, end);
    return why;
  }
  return 'not-ip';
}

/** Option types in an IPv4 header's options (RFC 791 section 3.1): type, then a length unless 0 or 1. */
function ipv4Options(b: Uint8Array, o: number, end: number): number[] {
  const out: number[] = [];
  while (o < end) {
    const t = b[o]!;
    out.push(t);
    if (t === 0) break;
    if (t === 1) {
      o++;
      continue;
    }
    const len = b[o + 1] ?? 0;
    if (len < 2) break; // malformed: stop, keeping what was read
    o += len;
  }
  return out;
}

/** The TCP or UDP checksum of the segment at [o, end) with the IPv4 or IPv6 pseudo-header (RFC 9293, 8200). */
function l4ChecksumOk(d: Decoded, b: Uint8Array, o: number, end: number): boolean {
  if (d.proto !== Proto.TCP && d.proto !== Proto.UDP) return true;
  // UDP over IPv4 may omit its checksum (zero)
  if (d.proto === Proto.UDP && d.ipVersion === 4 && b[o + 6] === 0 && b[o + 7] === 0) return true;
  const len = end - o;
  let sum = 0;
  const sa = d.srcAddr;
  const da = d.dstAddr;
  for (let i = 0; i < sa.length; i += 2) sum += (sa[i]! << 8) | sa[i + 1]!;
  for (let i = 0; i < da.length; i += 2) sum += (da[i]! << 8) | da[i + 1]!;
  sum += d.proto + (len >>> 16) + (len & 0xffff);
  sum += wordSum(b, o, end);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/**
 * Ranges at least this long are summed in WebAssembly (`WasmWordSum`: copied, then 16 bytes at a time)
 * where the module loads.
 */
const wordSumWasmMin = 128;
/** This thread's WebAssembly word sum: undefined until first wanted, null where it cannot load. */
let summer: WasmWordSum | null | undefined;
/**
 * Ranges at least this long are summed four bytes at a time (`wordSum`): below it the two-byte loop is
 * cheaper than the wide path's fixed cost (40 bytes in 42 ns against 68; even at about 96).
 */
const wordSumWideMin = 96;
/**
 * Aligned words summed between folds: four sums of at most 2^20 words below 2^32 each stay exact in a
 * double (under 2^53).
 */
const wordSumFoldWords = 1 << 20;
/** A 32-bit view of the memory of the frames summed last (the capture reader's chunk): one per chunk. */
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
let wordsOf: ArrayBufferLike | undefined;

/**
 * The sum of `b[from, to)` as big-endian 16-bit words (an odd last byte padded with zero), congruent
 * modulo 0xffff to RFC 1071's sum and 0 only when every byte is: the one's-complement sum, unfolded. A
 * range of 128 bytes or more is summed in WebAssembly where the module loads (`WasmWordSum`; a pass of
 * ndpi-mix-a's checksums 5.3 -> 3.4 ms, the bytes hot), else by `wordSumJs`.
 */
export function wordSum(b: Uint8Array, from: number, to: number): number {
  if (to - from >= wordSumWasmMin) {
    if (summer === undefined) summer = wasmWordSum() ?? null;
    if (summer) return summer.sum(b, from, to);
  }
  return wordSumJs(b, from, to);
}

/**
 * `wordSum` in JavaScript (for short ranges, and where the WebAssembly module does not load). A long range
 * is read as aligned 32-bit words through a view of the whole buffer and summed as such (a word is its
 * high 16 bits times 2^16 plus its low 16, and 2^16 is 1 modulo 0xffff): on a little-endian host each
 * holds two byte-swapped 16-bit words when it starts at an even distance from `from` (a byte swap
 * multiplies by 256 modulo 0xffff, so the swapped words' folded sum is swapped back) and two words in
 * place when at an odd one (RFC 1071 2(B)).
 */
export function wordSumJs(b: Uint8Array, from: number, to: number): number {
  let sum = 0;
  if (!littleEndian || to - from < wordSumWideMin) {
    let i = from;
    for (; i + 1 < to; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
    if (i < to) sum += b[i]! << 8;
    return sum;
  }
  if (b.buffer !== wordsOf) {
    wordsOf = b.buffer;
    words = new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2);
  }
  // the bytes before the first aligned word and after the last, each in its place in its 16-bit word
  const base = b.byteOffset;
  let i = from;
  while (((base + i) & 3) !== 0) {
    sum += (i - from) & 1 ? b[i]! : b[i]! << 8;
    i++;
  }
  const w0 = (base + i) >>> 2;
  const w1 = (base + to) >>> 2;
  for (let j = (w1 << 2) - base; j < to; j++) sum += (j - from) & 1 ? b[j]! : b[j]! << 8;
  // whole words in four sums (doubles, from a local): a 1,460-byte range in 375 ns and a 536-byte one in
  // 182, against 510 and 221 as two sums of the words' 16-bit halves
  const ws = words; // a local: the module's binding is read again at every use
  let mid = 0;
  for (let w = w0; w < w1; ) {
    const stop = Math.min(w1, w + wordSumFoldWords);
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (; w + 3 < stop; w += 4) {
      s0 += ws[w]!;
      s1 += ws[w + 1]!;
      s2 += ws[w + 2]!;
      s3 += ws[w + 3]!;
    }
    for (; w < stop; w++) s0 += ws[w]!;
    mid = fold16(mid + s0 + s1 + s2 + s3);
  }
  if (((i - from) & 1) === 1) return sum + mid;
  return sum + (((mid & 0xff) << 8) | (mid >>> 8));
}

/** `x` (a whole number below 2^53) folded to at most 0xffff, congruent modulo 0xffff, 0 only if it was. */
function fold16(x: number): number {
  while (x > 0xffff) {
    const high = Math.floor(x / 0x10000);
    x = x - high * 0x10000 + high;
  }
  return x;
}

function transport(d: PacketRecord, b: Uint8Array, o: number, end: number): DecodeFailure | undefined {
  if (d.proto === Proto.TCP) {
    if (end < o + 20) return 'truncated-transport';
    const off = (b[o + 12]! >> 4) * 4;
    if (off < 20 || end < o + off) return 'truncated-transport';
    d.srcPort = (b[o]! << 8) | b[o + 1]!;
    d.dstPort = (b[o + 2]! << 8) | b[o + 3]!;
    d.seq = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
    d.ack = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
    d.tcpFlags = b[o + 13]!;
    d.l4Offset = o;
    d.payload = view(b, o + off, end);
  } else if (d.proto === Proto.UDP) {
    if (end < o + 8) return 'truncated-transport';
    d.srcPort = (b[o]! << 8) | b[o + 1]!;
    d.dstPort = (b[o + 2]! << 8) | b[o + 3]!;
    d.payload = view(b, o + 8, end);
  } else if (d.proto === Proto.ICMP || d.proto === Proto.ICMPV6) {
    if (end < o + 4) return 'truncated-transport';
    d.icmpType = b[o]!;
    d.icmpCode = b[o + 1]!;
    // the payload follows the 8-byte header (type, code, checksum, 4 type-specific bytes), as Snort and
    // Suricata place it; a shorter message has its 4 header bytes and no payload
    if (end >= o + 8) {
      d.icmpId = (b[o + 4]! << 8) | b[o + 5]!;
      d.icmpSeq = (b[o + 6]! << 8) | b[o + 7]!;
      d.payload = view(b, o + 8, end);
    } else d.payload = view(b, end, end);
  } else d.payload = view(b, o, end);
  return undefined;
}
