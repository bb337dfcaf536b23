/**
 * Frames built by hand: Ethernet + IPv4 + TCP with correct checksums, and whole TCP conversations. For
 * demos, tests and tools that need traffic of a known shape (`encodePcap` writes them to a capture).
 */

/** TCP flag bits (RFC 9293 3.1). */
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

/** A dotted IPv4 address's four bytes. */
export function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split('.');
  const b = Uint8Array.from(parts, Number);
  if (parts.length !== 4 || parts.some((p, i) => !/^\d{1,3}$/.test(p) || b[i] !== Number(p)))
    throw new TypeError(`not a dotted IPv4 address: '${ip}'`);
  return b;
}

/** One TCP segment's fields; every field has a default (10.0.0.1:40000 -> 10.0.0.2:80, ACK, no data). */
export interface TcpSegment {
  src?: string;
  dst?: string;
  sp?: number;
  dp?: number;
  flags?: number;
  seq?: number;
  ack?: number;
  /** Bytes, or text read as latin1 (one byte a character). */
  payload?: string | Uint8Array;
}

/** The one's-complement sum (RFC 1071) of b[from, to) as big-endian words, folded to 16 bits. */
function sum16(b: Uint8Array, from: number, to: number, init = 0): number {
  let s = init;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** An Ethernet + IPv4 + TCP frame with correct IP and TCP checksums. */
export function tcpFrame(s: TcpSegment = {}): Uint8Array {
  const payload =
    typeof s.payload === 'string' ? Buffer.from(s.payload, 'latin1') : (s.payload ?? new Uint8Array(0));
  const f = new Uint8Array(14 + 20 + 20 + payload.length);
  f[12] = 0x08; // EtherType IPv4
  const ip = 14;
  f[ip] = 0x45;
  const total = 40 + payload.length;
  f[ip + 2] = total >> 8;
  f[ip + 3] = total & 0xff;
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  f.set(ipv4Bytes(s.src ?? '10.0.0.1'), ip + 12);
  f.set(ipv4Bytes(s.dst ?? '10.0.0.2'), ip + 16);
  const hc = ~sum16(f, ip, ip + 20) & 0xffff;
  f[ip + 10] = hc >> 8;
  f[ip + 11] = hc & 0xff;
  const t = ip + 20;
  const dv = new DataView(f.buffer);
  dv.setUint16(t, s.sp ?? 40000);
  dv.setUint16(t + 2, s.dp ?? 80);
  dv.setUint32(t + 4, (s.seq ?? 0) >>> 0);
  dv.setUint32(t + 8, (s.ack ?? 0) >>> 0);
  f[t + 12] = 0x50;
  f[t + 13] = s.flags ?? ACK;
  dv.setUint16(t + 14, 65535);
  f.set(payload, t + 20);
  // the pseudo-header: the addresses, the protocol and the segment's length
  const pseudo = sum16(f, ip + 12, ip + 20, 6 + 20 + payload.length);
  const tc = ~sum16(f, t, f.length, pseudo) & 0xffff;
  dv.setUint16(t + 16, tc);
  return f;
}

/**
 * The frames of a TCP conversation, by default from 10.0.0.1:40000 to 10.0.0.2:`serverPort`: the handshake
 * (ISNs 1000 and 5000), then each message in its direction (0: client to server) with PSH, acknowledged by
 * the other side; with `fin`, a FIN each way to close it.
 */
export function conversationFrames(
  messages: [0 | 1, Uint8Array | string][],
  o: { serverPort: number; client?: string; clientPort?: number; server?: string; fin?: boolean },
): Uint8Array[] {
  const c = o.client ?? '10.0.0.1';
  const s = o.server ?? '10.0.0.2';
  const C = { src: c, dst: s, sp: o.clientPort ?? 40000, dp: o.serverPort };
  const S = { src: s, dst: c, sp: o.serverPort, dp: C.sp };
  const frames = [
    tcpFrame({ ...C, flags: SYN, seq: 1000 }),
    tcpFrame({ ...S, flags: SYN | ACK, seq: 5000, ack: 1001 }),
    tcpFrame({ ...C, flags: ACK, seq: 1001, ack: 5001 }),
  ];
  const seq = [1001, 5001];
  for (const [dir, data] of messages) {
    const [from, to] = dir === 0 ? [C, S] : [S, C];
    frames.push(tcpFrame({ ...from, flags: ACK | PSH, seq: seq[dir], ack: seq[1 - dir], payload: data }));
    seq[dir]! += data.length;
    frames.push(tcpFrame({ ...to, flags: ACK, seq: seq[1 - dir], ack: seq[dir] }));
  }
  if (o.fin) {
    frames.push(tcpFrame({ ...C, flags: ACK | FIN, seq: seq[0], ack: seq[1] }));
    frames.push(tcpFrame({ ...S, flags: ACK | FIN, seq: seq[1], ack: seq[0]! + 1 }));
  }
  return frames;
}
