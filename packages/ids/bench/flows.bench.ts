// The flow table and the reassembly fast path against the simplest things that do the same job, side by
// side in one process: (1) FlowTable.track (keyed HighwayHash + bucketized cuckoo + TCP state) against a
// JavaScript Map keyed by the 5-tuple as a string (what this package used before); (2) in-order TCP
// reassembly (StreamReassembler, insert + release per segment) against a naive reassembler that keeps the
// segments in a Map by sequence number and concatenates what is contiguous.
// Usage: npm run bench -- ids [flows]
import { type Impl, runBench } from '@strata/bench';
import { type Decoded, FlowTable, StreamReassembler } from '../src/index.js';

function addr(n: number): Uint8Array {
  return Uint8Array.of(10, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

function packet(i: number, flows: number): Decoded {
  const f = i % flows;
  const fromClient = (i >> 1) % 2 === 0;
  const c = addr(f);
  const s = addr(0xffffff - (f % 97));
  return {
    ipVersion: 4,
    src: '',
    dst: '',
    srcAddr: fromClient ? c : s,
    dstAddr: fromClient ? s : c,
    proto: 6,
    ttl: 64,
    ipId: 0,
    ipFlags: 0,
    srcPort: fromClient ? 40000 + (f % 1000) : 443,
    dstPort: fromClient ? 443 : 40000 + (f % 1000),
    tcpFlags: 0x10,
    seq: i,
    ack: 0,
    icmpType: 0,
    icmpCode: 0,
    icmpId: 0,
    icmpSeq: 0,
    payload: new Uint8Array(0),
    fragment: false,
    ipChecksumOk: true,
    ipOptions: [],
    l4ChecksumOk: true,
    vlans: [],
    tunnels: 0,
  };
}

const batch = 4096;
const flowCases = [1_000, 50_000].map((n) => ({ name: `${n} flows`, x: n, items: batch }));
type FC = (typeof flowCases)[number];
const key = new Uint8Array(32).fill(3);

const flowSubject: Impl<FC> = {
  name: 'FlowTable.track (HighwayHash, cuckoo, TCP state)',
  setup: (c) => {
    const t = new FlowTable({ hashKey: key, flowsMax: c.x * 2 });
    const pkts = Array.from({ length: batch * 4 }, (_, i) => packet(i * 7919, c.x));
    let at = 0;
    return () => {
      for (let i = 0; i < batch; i++) t.track(pkts[(at + i) % pkts.length]!, 1);
      at += batch;
    };
  },
};

const flowAnchor: Impl<FC> = {
  name: 'Map by 5-tuple string',
  setup: (c) => {
    const m = new Map<string, { n: number; client: string }>();
    const pkts = Array.from({ length: batch * 4 }, (_, i) => packet(i * 7919, c.x));
    let at = 0;
    return () => {
      for (let i = 0; i < batch; i++) {
        const d = pkts[(at + i) % pkts.length]!;
        const a = `${d.srcAddr.join('.')}/${d.srcPort}`;
        const b = `${d.dstAddr.join('.')}/${d.dstPort}`;
        const k = `${d.proto}|${a < b ? `${a}|${b}` : `${b}|${a}`}`;
        let f = m.get(k);
        if (!f) m.set(k, (f = { n: 0, client: a }));
        f.n++;
      }
      at += batch;
    };
  },
};

await runBench({
  name: 'flow-table',
  title: 'flow lookups per second (4,096 packets per op)',
  cases: flowCases,
  subject: flowSubject,
  anchors: [flowAnchor],
  xLabel: 'live flows',
  minTimeMs: 150,
  warmupMs: 100,
});

const segs = 1024;
const streamCases = [64, 1460].map((n) => ({ name: `${n} B segments`, x: n, items: segs }));
type SC = (typeof streamCases)[number];

const streamSubject: Impl<SC> = {
  name: 'StreamReassembler in order (insert + release)',
  setup: (c) => {
    const data = new Uint8Array(c.x).fill(0x41);
    return () => {
      const r = new StreamReassembler(0xffffff00);
      for (let i = 0; i < segs; i++) {
        r.insert((0xffffff00 + i * c.x) >>> 0, data);
        r.release();
      }
      r.dispose();
    };
  },
};

const streamAnchor: Impl<SC> = {
  name: 'naive: Map by seq + concat',
  setup: (c) => {
    const data = new Uint8Array(c.x).fill(0x41);
    return () => {
      const held = new Map<number, Uint8Array>();
      let next = 0xffffff00;
      for (let i = 0; i < segs; i++) {
        held.set((0xffffff00 + i * c.x) >>> 0, data.slice());
        const out: Uint8Array[] = [];
        for (let s = held.get(next); s; s = held.get(next)) {
          held.delete(next);
          out.push(s);
          next = (next + s.length) >>> 0;
        }
        Buffer.concat(out);
      }
    };
  },
};

await runBench({
  name: 'reassembly-in-order',
  title: 'in-order TCP segments per second (1,024 per op)',
  cases: streamCases,
  subject: streamSubject,
  anchors: [streamAnchor],
  xLabel: 'segment bytes',
  minTimeMs: 150,
  warmupMs: 100,
});
