// The whole pipeline over a real capture with packets damaged at random, with every community rule: bytes
// changed (half of them in the first 80, the headers), packets cut, protocol words spliced into payloads
// (HTTP lengths and chunk sizes past any bound, gzip headers, MIME boundaries, FTP PORT/PASV replies, TLS
// and DCE/RPC headers), packets held back and replayed late. Nothing may throw, and neither a rule nor a
// packet's inspection may fault (each is counted and the run goes on: a fault here is an engine bug).
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Alert,
  encodePcap,
  type Packet,
  ParallelRunner,
  Pipeline,
  type PipelineOptions,
  parseRules,
  type Rule,
  readCapture,
  runCapture,
} from '../src/index.js';
import { damaged, mulberry32 } from './damage.js';
import { alertLine, sharedIds } from './helpers.js';

const { shared, have } = sharedIds('traces/ndpi-mix-a.pcap');

/** Words spliced into payloads: each aims at a parser's bounds or state. */
const words = [
  '\r\nContent-Length: 99999999999999999999\r\n',
  '\r\nContent-Length: -5\r\n',
  '\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n',
  '\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00',
  'GET / HTTP/1.1\r\n',
  'HTTP/1.1 200 OK\r\n',
  '\r\n\r\n',
  'Content-Type: multipart/form-data; boundary=',
  '--\r\n',
  '%%%%%u',
  'PORT 1,2,3,4,5,6\r\n',
  '227 Entering Passive Mode (127,0,0,1,300,1)\r\n',
  'MAIL FROM:<',
  'DATA\r\n',
  'Content-Transfer-Encoding: base64\r\n',
  '\x16\x03\x01\xff\xff',
  'INVITE sip:',
  '\x05\x00\x0b\x03',
];

/** The community rules and ndpi-mix-a's packets (each with bytes of its own, to damage). */
async function material(): Promise<{ rules: Rule[]; packets: Packet[] }> {
  const rules = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community').rules;
  const packets: Packet[] = [];
  for await (const p of readCapture(createReadStream(`${shared}traces/ndpi-mix-a.pcap`)))
    packets.push({ ...p, data: Uint8Array.from(p.data) });
  return { rules, packets };
}

describe.runIf(have)('the pipeline on a damaged capture (fuzz)', () => {
  it('never throws and counts no rule or packet fault, IDS and IPS, every community rule', async () => {
    const { rules, packets } = await material();
    const settings: PipelineOptions[] = [
      { validateChecksums: false },
      { validateChecksums: false, reassemblyDepthBytes: 0 },
      { validateChecksums: 'auto', ips: true },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.constantFrom(0.01, 0.05, 0.2),
        fc.constantFrom(...settings),
        async (seed, rate, opts) => {
          const next = mulberry32(seed);
          const pipe = new Pipeline(rules, opts);
          for (const p of damaged(packets, rate, next, words)) pipe.push(p);
          pipe.finish();
          expect(pipe.packets).toBe(packets.length);
          expect([...pipe.engine.ruleFaults]).toEqual([]);
          expect(pipe.engine.packetFaults).toEqual([]);
        },
      ),
      { numRuns: 3 },
    );
  }, 120_000);

  it('gives the same alerts on 2 workers as on one thread, whoever reads the capture', async () => {
    const { rules, packets } = await material();
    const dir = mkdtempSync(join(tmpdir(), 'ids-damaged-'));
    const pool = new ParallelRunner(2);
    try {
      const file = join(dir, 'damaged.pcap');
      // replayed packets go into the file in their new order, so their times step back: as a capture can
      writeFileSync(file, encodePcap(damaged(packets, 0.05, mulberry32(20261205), words)));
      // every field but the flow id (helpers' alertLine), the packet of a flow's timeout too
      const key = (r: { alerts: Alert[] }) => r.alerts.map(alertLine).sort();
      const one = await runCapture(file, rules, { validateChecksums: 'auto' });
      expect(one.alerts.length).toBeGreaterThan(0);
      for (const reader of ['main', 'workers'] as const) {
        const two = await pool.run(file, rules, { validateChecksums: 'auto', reader });
        expect(key(two), reader).toEqual(key(one));
        expect([two.ruleFaults, two.packetFaults]).toEqual([[], []]);
      }
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
