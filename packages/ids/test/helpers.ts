/** Test helpers: decoded packets and raw frames built by hand. */
import type { Decoded } from '../src/index.js';

export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const RST = 0x04;
export const PSH = 0x08;

function addrBytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

export interface PktSpec {
  src?: string;
  dst?: string;
  sp?: number;
  dp?: number;
  proto?: number;
  flags?: number;
  seq?: number;
  ack?: number;
  payload?: string | Uint8Array;
}

/** A decoded IPv4 packet (TCP unless `proto` says otherwise). */
export function pkt(s: PktSpec = {}): Decoded {
  const src = s.src ?? '10.0.0.1';
  const dst = s.dst ?? '10.0.0.2';
  const payload =
    typeof s.payload === 'string' ? Buffer.from(s.payload, 'latin1') : (s.payload ?? new Uint8Array(0));
  return {
    ipVersion: 4,
    src,
    dst,
    srcAddr: addrBytes(src),
    dstAddr: addrBytes(dst),
    proto: s.proto ?? 6,
    ttl: 64,
    srcPort: s.sp ?? 40000,
    dstPort: s.dp ?? 80,
    tcpFlags: s.flags ?? ACK,
    seq: (s.seq ?? 0) >>> 0,
    ack: (s.ack ?? 0) >>> 0,
    icmpType: 0,
    icmpCode: 0,
    icmpId: 0,
    icmpSeq: 0,
    payload: new Uint8Array(payload),
    fragment: false,
    ipChecksumOk: true,
    ipOptions: [],
    l4ChecksumOk: true,
    vlans: [],
  };
}

/** The two directions of one TCP conversation with a completed handshake; ISNs 1000 (client), 5000. */
export function handshake(c = '10.0.0.1', s = '10.0.0.2', cp = 40000, sp = 80): Decoded[] {
  return [
    pkt({ src: c, dst: s, sp: cp, dp: sp, flags: SYN, seq: 1000 }),
    pkt({ src: s, dst: c, sp, dp: cp, flags: SYN | ACK, seq: 5000, ack: 1001 }),
    pkt({ src: c, dst: s, sp: cp, dp: sp, flags: ACK, seq: 1001, ack: 5001 }),
  ];
}
