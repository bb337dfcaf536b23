// The naive matcher, the throughput bench's anchor (issue 10): no port groups, no prefilter, no flow state
// beyond in-order concatenation; each rule's positive contents searched with indexOf over every reassembled
// payload. It does less than a rule engine (no headers, no positions, no pcre, no HTTP or MIME decoding:
// a rule is a candidate when all its contents occur), so its time is a lower bound for a matcher that
// evaluates every rule on every payload; the pipeline's gain over it is then at least the measured ratio.
import { createReadStream } from 'node:fs';
import { decode, newDecodeStats, type Rule, readCapture } from '../src/index.js';

/** Bytes of each TCP direction concatenated at most (as the engine's reassembly depth). */
const streamBytesMax = 1024 * 1024;

export interface NaiveResult {
  seconds: number;
  packets: number;
  bytes: number;
  /** Payloads searched: one per TCP direction (its concatenated bytes), one per other packet with data. */
  payloads: number;
  payloadBytes: number;
  /** Rules with at least one positive content (the others cannot be searched with indexOf). */
  rulesSearched: number;
  /** (rule, payload) pairs in which every positive content of the rule occurs. */
  candidates: number;
}

interface Needle {
  bytes: Buffer;
  nocase: boolean;
}

const lower = (b: Buffer) => {
  const out = Buffer.from(b);
  for (let i = 0; i < out.length; i++) {
    const c = out[i]!;
    if (c >= 0x41 && c <= 0x5a) out[i] = c + 32;
  }
  return out;
};

export async function naiveRun(pcap: string, rules: Rule[]): Promise<NaiveResult> {
  const t0 = performance.now();
  const searched: Needle[][] = [];
  for (const r of rules) {
    const ns = r.contents
      .filter((c) => !c.negated && c.bytes.length > 0)
      .map((c) => ({
        bytes: c.nocase ? lower(Buffer.from(c.bytes)) : Buffer.from(c.bytes),
        nocase: c.nocase,
      }));
    if (ns.length > 0) searched.push(ns);
  }
  const stats = newDecodeStats();
  // naive reassembly: per direction, the bytes that continue the sequence space are appended (a jump
  // forward is appended too, a retransmission skipped)
  const streams = new Map<string, { next: number; parts: Buffer[]; len: number }>();
  const others: Buffer[] = [];
  let packets = 0;
  let bytes = 0;
  for await (const p of readCapture(createReadStream(pcap))) {
    packets++;
    bytes += p.data.length;
    const d = decode(p.linkType, p.data, stats);
    if (typeof d === 'string') continue;
    if (d.payload.length === 0) continue;
    if (d.proto !== 6) {
      others.push(Buffer.from(d.payload));
      continue;
    }
    const key = `${d.src} ${d.srcPort} ${d.dst} ${d.dstPort}`;
    let s = streams.get(key);
    if (!s) {
      s = { next: d.seq, parts: [], len: 0 };
      streams.set(key, s);
    }
    if (((d.seq - s.next) | 0) < 0 || s.len >= streamBytesMax) continue;
    const take = d.payload.subarray(0, streamBytesMax - s.len);
    s.parts.push(Buffer.from(take));
    s.len += take.length;
    s.next = (d.seq + d.payload.length) >>> 0;
  }
  const payloads = [...[...streams.values()].map((s) => Buffer.concat(s.parts)), ...others];
  let candidates = 0;
  let payloadBytes = 0;
  for (const hay of payloads) {
    payloadBytes += hay.length;
    let hayLower: Buffer | undefined;
    for (const ns of searched) {
      let all = true;
      for (const n of ns) {
        const h = n.nocase ? (hayLower ??= lower(hay)) : hay;
        if (h.indexOf(n.bytes) < 0) {
          all = false;
          break;
        }
      }
      if (all) candidates++;
    }
  }
  return {
    seconds: (performance.now() - t0) / 1000,
    packets,
    bytes,
    payloads: payloads.length,
    payloadBytes,
    rulesSearched: searched.length,
    candidates,
  };
}
