/** Test helpers: decoded packets and raw frames built by hand, and where the shared IDS material is. */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { vi } from 'vitest';
import {
  ACK,
  type Alert,
  type Decoded,
  Engine,
  ipv4Bytes,
  loadRules,
  type PipelineOptions,
  parseRules,
  type Rule,
  readCapture,
  SYN,
  type TcpSegment,
  tcpFrame,
} from '../src/index.js';

export { ACK, conversationFrames, FIN, PSH, RST, SYN, tcpFrame } from '../src/index.js';

/** The community rules that load, then the rules of `extra` (rule text, one rule a line). */
export function communityRulesWith(shared: string, extra: string): Rule[] {
  const set = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
  const loaded = new Set(new Engine(set.rules).compiled.map((c) => c.rule.sid));
  return [...set.rules.filter((r) => loaded.has(r.sid)), ...loadRules(extra, 'extra.rules').rules];
}

/** One case of the shared suricata-verify manifest (the fields the tests read). */
export interface ManifestCase {
  name: string;
  pcap: string;
  rules: string;
  args: string[];
  ips: boolean;
  checksum_validation: string;
  config_settings: string[];
}

/** Suricata's options of a manifest case, as test/verify.test.ts maps them. */
export function caseOptions(c: ManifestCase): PipelineOptions {
  const hostOsPolicy: Record<string, string[]> = {};
  let actionOrder: string[] | undefined;
  for (const s of c.config_settings) {
    const p = /^host-os-policy\.([a-z0-9-]+)=(.*)$/.exec(s);
    if (p) hostOsPolicy[p[1]!] = JSON.parse(p[2]!);
    const a = /^action-order=(.*)$/.exec(s);
    if (a) actionOrder = JSON.parse(a[1]!);
  }
  return {
    midstream: c.args.some((a) => a.includes('midstream=true')),
    asyncOneside: c.args.some((a) => a.includes('async-oneside=true')),
    vlanAgnostic: [...c.args, ...c.config_settings].some((a) => a.includes('vlan.use-for-tracking=false')),
    hostOsPolicy,
    ...(actionOrder && { actionOrder }),
    streamRelease: c.ips ? 'immediate' : 'ack',
    ips: c.ips,
    validateChecksums: c.checksum_validation !== 'none' && !c.args.includes('none'),
  };
}

export interface PktSpec extends TcpSegment {
  proto?: number;
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
    srcAddr: ipv4Bytes(src),
    dstAddr: ipv4Bytes(dst),
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
    tunnels: 0,
  };
}

/** A decoded packet from the server of `pkt`'s default session (10.0.0.2:80 to 10.0.0.1:40000). */
export function fromServer(s: PktSpec = {}): Decoded {
  return pkt({ src: '10.0.0.2', dst: '10.0.0.1', sp: 80, dp: 40000, ...s });
}

/** The two directions of one TCP conversation with a completed handshake; ISNs 1000 (client), 5000. */
export function handshake(c = '10.0.0.1', s = '10.0.0.2', cp = 40000, sp = 80): Decoded[] {
  return [
    pkt({ src: c, dst: s, sp: cp, dp: sp, flags: SYN, seq: 1000 }),
    pkt({ src: s, dst: c, sp, dp: cp, flags: SYN | ACK, seq: 5000, ack: 1001 }),
    pkt({ src: c, dst: s, sp: cp, dp: sp, flags: ACK, seq: 1001, ack: 5001 }),
  ];
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
 * An alert as a comparable line: every field but the flow id, which is numbered per worker. (Until
 * 2026-12-07 an alert flushed from a flow that timed out kept all but its packet: a worker swept its flow
 * table at its own packets only, and now sweeps it at every packet, `Engine.tick`.)
 */
export function alertLine(a: Alert): string {
  const when = `${a.pcapCnt}@${a.tsUs}`;
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

/** An IPv4 frame's header checksum set again (after a change to the header). */
export function ipChecksum(f: Uint8Array): void {
  f[24] = 0;
  f[25] = 0;
  let s = 0;
  for (let i = 14; i < 34; i += 2) s += (f[i]! << 8) | f[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  f[24] = (~s >> 8) & 0xff;
  f[25] = ~s & 0xff;
}

/** An Ethernet + IPv4 frame cut in two fragments after 24 bytes of its IP payload. */
export function fragments(f: Uint8Array, id: number): Uint8Array[] {
  const cut = 24;
  const a = new Uint8Array(34 + cut);
  a.set(f.subarray(0, 34 + cut));
  const b = new Uint8Array(f.length - cut);
  b.set(f.subarray(0, 34));
  b.set(f.subarray(34 + cut), 34);
  for (const [x, field] of [
    [a, 0x2000],
    [b, cut / 8],
  ] as const) {
    const total = x.length - 14;
    x[16] = total >> 8;
    x[17] = total & 0xff;
    x[18] = id >> 8;
    x[19] = id & 0xff;
    x[20] = field >> 8;
    x[21] = field & 0xff;
    ipChecksum(x);
  }
  return [a, b];
}
