/**
 * What a `reject` rule sends in IPS mode, as Suricata's and Snort's reject do: to the sender of the
 * offending packet (`reject`, Suricata's `rejectsrc`), a TCP reset for TCP (RFC 9293 3.10.7.1: its sequence number is the segment's
 * acknowledgment number, or zero with an ACK of everything the segment occupied when it had none), and an
 * ICMP destination unreachable otherwise (RFC 792: port unreachable for UDP, protocol unreachable for the
 * rest, quoting the IP header and the first 8 bytes of the datagram; ICMPv6 per RFC 4443: port
 * unreachable or administratively prohibited, quoting as much as fits in 1,280 bytes). Never a response to
 * a reset, to an ICMP error, to a fragment or to a multicast or broadcast destination (RFC 1122 3.2.2,
 * RFC 4443 2.4(e)).
 *
 * Suricata's `rejectdst` sends to the packet's destination instead, in the packet's own direction (from its
 * source address and port, the link layer as the packet had it): a reset whose sequence number is the
 * packet's own (the next the receiver expects, as the packet is dropped), RST+ACK with the packet's
 * acknowledgment number when it had one, or an ICMP unreachable quoting the packet. `rejectboth` sends
 * both, the sender's first.
 */
import { checksum16, type Decoded, Proto } from './decode.js';

const ipv4Header = 20;
const ipv6Header = 40;
const minMtu6 = 1280;

/** Who a reject's response goes to: the packet's sender, its destination, or both. */
export type RejectTarget = 'src' | 'dst' | 'both';

/** The response target of a rule action (`reject` and `rejectsrc`: the sender), or undefined for the others. */
export function rejectTargetOf(action: string): RejectTarget | undefined {
  return action === 'reject' || action === 'rejectsrc'
    ? 'src'
    : action === 'rejectdst'
      ? 'dst'
      : action === 'rejectboth'
        ? 'both'
        : undefined;
}

/**
 * The frames to send for `d`, which was decoded from `frame` (the datagram rebuilt from fragments is
 * `whole`, behind `frame`'s link-layer bytes), to `to` (default the sender). The link layer is the packet's
 * own, with Ethernet addresses swapped for the sender's frame; empty when no response is due.
 */
export function rejectFrames(
  frame: Uint8Array,
  linkType: number,
  d: Decoded,
  whole?: Uint8Array,
  to: RejectTarget = 'src',
): Uint8Array[] {
  if (to === 'both')
    return [
      ...rejectFrames(frame, linkType, d, whole, 'src'),
      ...rejectFrames(frame, linkType, d, whole, 'dst'),
    ];
  // a tunneled packet's response would need its encapsulation rebuilt (outer addresses, lengths, checksums)
  if (d.fragment || multicast(d) || d.tunnels > 0) return [];
  const back = to === 'src';
  const dgram = whole ?? frame;
  // the IP header to quote: where decoding found it in `dgram` (a packet made otherwise has none)
  if (d.ipOffset === undefined || d.payload.buffer !== dgram.buffer) return [];
  const ipStart = d.ipOffset;
  if (ipStart < 0 || d.payload.byteOffset - dgram.byteOffset < ipStart) return [];
  const link = Uint8Array.from(
    whole ? frame.subarray(0, frame.length - whole.length) : frame.subarray(0, ipStart),
  );
  if (back && linkType === 1 && link.length >= 12) {
    // Ethernet: the reply goes from the destination's address to the source's
    const src = link.slice(6, 12);
    link.copyWithin(6, 0, 6);
    link.set(src, 0);
  }
  let l4: Uint8Array | undefined;
  let proto: number = d.proto;
  if (d.proto === Proto.TCP) l4 = back ? tcpReset(d) : tcpResetForward(d);
  else {
    if ((d.proto === Proto.ICMP && icmpError4(d.icmpType)) || (d.proto === Proto.ICMPV6 && d.icmpType < 128))
      return [];
    const quoted = dgram.subarray(ipStart);
    l4 = d.ipVersion === 4 ? unreachable4(d, quoted) : unreachable6(d, quoted);
    proto = d.ipVersion === 4 ? Proto.ICMP : Proto.ICMPV6;
  }
  if (!l4) return [];
  const [from, dest] = back ? [d.dstAddr, d.srcAddr] : [d.srcAddr, d.dstAddr];
  const ip = d.ipVersion === 4 ? ip4(from, dest, proto, l4) : ip6(from, dest, proto, l4);
  const out = new Uint8Array(link.length + ip.length);
  out.set(link);
  out.set(ip, link.length);
  return [out];
}

function icmpError4(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

function multicast(d: Decoded): boolean {
  const a = d.dstAddr;
  if (d.ipVersion === 6) return a[0] === 0xff;
  return (a[0]! & 0xf0) === 0xe0 || (a[0] === 255 && a[1] === 255 && a[2] === 255 && a[3] === 255);
}

/** The reset for a TCP segment, or undefined when the segment is itself a reset. */
function tcpReset(d: Decoded): Uint8Array | undefined {
  const flags = d.tcpFlags;
  if (flags & 0x04) return undefined;
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  v.setUint16(0, d.dstPort);
  v.setUint16(2, d.srcPort);
  if (flags & 0x10) {
    v.setUint32(4, d.ack >>> 0);
    h[13] = 0x04; // RST
  } else {
    // SYN and FIN each occupy one sequence number
    const len = d.payload.length + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0);
    v.setUint32(8, (d.seq + len) >>> 0);
    h[13] = 0x14; // RST, ACK
  }
  h[12] = 5 << 4; // data offset: 20 bytes
  return h;
}

/** The reset for the receiver of a TCP segment (in the segment's direction), or undefined for a reset. */
function tcpResetForward(d: Decoded): Uint8Array | undefined {
  const flags = d.tcpFlags;
  if (flags & 0x04) return undefined;
  const h = new Uint8Array(20);
  const v = new DataView(h.buffer);
  v.setUint16(0, d.srcPort);
  v.setUint16(2, d.dstPort);
  v.setUint32(4, d.seq >>> 0);
  if (flags & 0x10) {
    v.setUint32(8, d.ack >>> 0);
    h[13] = 0x14; // RST, ACK
  } else h[13] = 0x04; // RST
  h[12] = 5 << 4;
  return h;
}

function unreachable4(d: Decoded, quoted: Uint8Array): Uint8Array {
  const ihl = (quoted[0]! & 0x0f) * 4;
  const q = quoted.subarray(0, Math.min(quoted.length, ihl + 8));
  const m = new Uint8Array(8 + q.length);
  m[0] = 3; // destination unreachable
  m[1] = d.proto === Proto.UDP ? 3 : 2; // port / protocol unreachable
  m.set(q, 8);
  new DataView(m.buffer).setUint16(2, checksum([m]));
  return m;
}

function unreachable6(d: Decoded, quoted: Uint8Array): Uint8Array {
  const q = quoted.subarray(0, Math.min(quoted.length, minMtu6 - ipv6Header - 8));
  const m = new Uint8Array(8 + q.length);
  m[0] = 1; // destination unreachable
  m[1] = d.proto === Proto.UDP ? 4 : 1; // port unreachable / administratively prohibited
  m.set(q, 8);
  return m; // its checksum needs the pseudo-header: set in ip6
}

/** An IPv4 datagram from `from` to `dest` carrying `l4` (TCP checksum filled in). */
function ip4(from: Uint8Array, dest: Uint8Array, proto: number, l4: Uint8Array): Uint8Array {
  const p = new Uint8Array(ipv4Header + l4.length);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  p[8] = 64; // TTL
  p[9] = proto;
  p.set(from, 12);
  p.set(dest, 16);
  v.setUint16(10, checksum([p.subarray(0, ipv4Header)]));
  p.set(l4, ipv4Header);
  if (proto === Proto.TCP) {
    const pseudo = new Uint8Array(12);
    pseudo.set(from, 0);
    pseudo.set(dest, 4);
    pseudo[9] = proto;
    new DataView(pseudo.buffer).setUint16(10, l4.length);
    v.setUint16(ipv4Header + 16, checksum([pseudo, p.subarray(ipv4Header)]));
  }
  return p;
}

/** An IPv6 packet from `from` to `dest` carrying `l4` (TCP or ICMPv6 checksum filled in). */
function ip6(from: Uint8Array, dest: Uint8Array, proto: number, l4: Uint8Array): Uint8Array {
  const p = new Uint8Array(ipv6Header + l4.length);
  const v = new DataView(p.buffer);
  p[0] = 0x60;
  v.setUint16(4, l4.length);
  p[6] = proto;
  p[7] = 64; // hop limit
  p.set(from, 8);
  p.set(dest, 24);
  p.set(l4, ipv6Header);
  const pseudo = new Uint8Array(40);
  pseudo.set(from, 0);
  pseudo.set(dest, 16);
  new DataView(pseudo.buffer).setUint32(32, l4.length);
  pseudo[39] = proto;
  v.setUint16(ipv6Header + (proto === Proto.TCP ? 16 : 2), checksum([pseudo, p.subarray(ipv6Header)]));
  return p;
}

/** The Internet checksum of the parts, one after the other. */
function checksum(parts: Uint8Array[]): number {
  if (parts.length === 1) return checksum16(parts[0]!, 0, parts[0]!.length);
  const all = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) {
    all.set(b, at);
    at += b.length;
  }
  return checksum16(all, 0, all.length);
}
