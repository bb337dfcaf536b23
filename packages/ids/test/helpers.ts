/** Test helpers: decoded packets and raw frames built by hand, and where the shared IDS material is. */
import { createReadStream, existsSync } from 'node:fs';
import { vi } from 'vitest';
import { type Alert, type Decoded, readCapture } from '../src/index.js';

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
    ipId: 0,
    ipFlags: 0,
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

function sum16(b: Uint8Array, from: number, to: number, init = 0): number {
  let s = init;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** An Ethernet + IPv4 + TCP frame with correct IP and TCP checksums. */
export function tcpFrame(s: PktSpec = {}): Uint8Array {
  const payload =
    typeof s.payload === 'string' ? Buffer.from(s.payload, 'latin1') : (s.payload ?? new Uint8Array(0));
  const f = new Uint8Array(14 + 20 + 20 + payload.length);
  f[12] = 0x08;
  const ip = 14;
  f[ip] = 0x45;
  const total = 40 + payload.length;
  f[ip + 2] = total >> 8;
  f[ip + 3] = total & 0xff;
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  f.set(addrBytes(s.src ?? '10.0.0.1'), ip + 12);
  f.set(addrBytes(s.dst ?? '10.0.0.2'), ip + 16);
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

/** The frames of `handshake`'s session (client port `cp`): SYN, SYN/ACK, ACK, each with valid checksums. */
export function handshakeFrames(cp = 40000): Uint8Array[] {
  return [
    tcpFrame({ sp: cp, flags: SYN, seq: 1000 }),
    tcpFrame({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: cp, flags: SYN | ACK, seq: 5000, ack: 1001 }),
    tcpFrame({ sp: cp, flags: ACK, seq: 1001, ack: 5001 }),
  ];
}

/** The packets of a pcap file, as copies, with their timestamps. */
export async function readPcapFrames(path: string): Promise<{ data: Uint8Array; tsUs: number }[]> {
  const out: { data: Uint8Array; tsUs: number }[] = [];
  for await (const p of readCapture(createReadStream(path)))
    out.push({ data: new Uint8Array(p.data), tsUs: p.tsUs });
  return out;
}

/**
 * An alert as a comparable line. Flow ids are numbered per worker, and alerts flushed from a flow that
 * timed out are raised at the first packet its table sees after the timeout (a worker sees fewer of
 * them), so those keep everything but the packet they were raised during.
 */
export function alertLine(a: Alert): string {
  const when = a.pktSrc === 'stream (flow timeout)' ? 'timeout' : `${a.pcapCnt}@${a.tsUs}`;
  const bytes = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('base64') : '-');
  return [
    when,
    a.sid,
    a.action,
    `${a.src}:${a.srcPort}`,
    `${a.dst}:${a.dstPort}`,
    a.proto,
    a.stream,
    a.pktSrc,
    bytes(a.payload),
    bytes(a.packet),
  ].join(' ');
}

/**
 * ../shared/ids beside the repo (rules, traces, the suricata-verify cases) and whether `probe`, a path
 * under it, exists: tests that need it run only when it does, and in CI its absence is an error.
 */
export function sharedIds(probe: string): { shared: string; have: boolean } {
  const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
  const have = existsSync(`${shared}${probe}`);
  if (!have && process.env.CI) throw new Error('CI: ../shared/ids is missing');
  return { shared, have };
}

/**
 * Runs `run` with build/scan.wasm unreadable (node:fs mocked for that path, modules reset before and
 * after): what `run` imports afresh falls back to JavaScript.
 */
export async function withoutScanWasm(run: () => Promise<void>): Promise<void> {
  vi.resetModules();
  vi.doMock('node:fs', async (importOriginal) => {
    const fs = await importOriginal<typeof import('node:fs')>();
    const readFileSync = ((path: Parameters<typeof fs.readFileSync>[0], ...rest: unknown[]) => {
      if (String(path).endsWith('/build/scan.wasm')) throw new Error('ENOENT: build/scan.wasm (test)');
      return (fs.readFileSync as (...a: unknown[]) => unknown)(path, ...rest);
    }) as typeof fs.readFileSync;
    return { ...fs, default: { ...fs, readFileSync }, readFileSync };
  });
  try {
    await run();
  } finally {
    vi.doUnmock('node:fs');
    vi.resetModules();
  }
}
