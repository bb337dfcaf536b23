/**
 * HTTP Evader (Steffen Ullrich, noxxi.de/research/http-evader.html) serves the EICAR test file with
 * responses each broken in one way that some browser still decodes: odd status lines, stray bytes in field
 * names and values, folds, chunk-size lines with junk, bodies said to be chunked that are not, gzip members
 * with broken headers or trailers, codings named wrongly. suricata-verify's tests/http-evader/ has 502 of
 * these conversations, and suricata-verify-mix.pcap holds them all.
 * A rule on file_data must see the file in as many as the parser can read the way a browser does.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadRules, runCapture } from '../src/index.js';

const traces = new URL('../../../../shared/ids/traces/', import.meta.url).pathname;
const trace = `${traces}suricata-verify-mix.pcap`;
const have = existsSync(trace);
if (!have && process.env.CI) throw new Error('CI: ../shared/ids/traces/suricata-verify-mix.pcap is missing');

/**
 * Conversations whose file a file_data rule finds: 288 of 502 before 2026-12-07's browser-lenient reading,
 * 492 after its first day, 501 since (all but lzma), all 502 since LZMA-alone bodies are decoded.
 */
const foundFloor = 502;

const rules = [
  'alert http any any -> any any (msg:"EICAR in a response body"; flow:to_client; file_data; content:"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"; sid:1;)',
  'alert tcp any any -> any any (msg:"EICAR in the stream as sent"; flow:to_client; content:"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"; sid:2;)',
].join('\n');

describe.runIf(have)('HTTP Evader', () => {
  it(`a file_data rule finds the EICAR file in at least ${foundFloor} of the 502 conversations`, async () => {
    // each conversation is from 1.1.1.1 (a port of its own) to 8.8.8.8:80; a body can end at a later
    // component's packet (a flow without its FIN is flushed later), so conversations go by client port
    const { rules: loaded } = loadRules(rules, 'evader.rules');
    const res = await runCapture(trace, loaded);
    const found = new Set<number>();
    const asSent = new Set<number>();
    for (const a of res.alerts)
      if (a.src === '8.8.8.8' && a.dst === '1.1.1.1') (a.sid === 1 ? found : asSent).add(a.dstPort);
    expect(found.size).toBeGreaterThanOrEqual(foundFloor);
    // the body as sent holds the file in fewer of them: what the parser's reading adds
    expect(asSent.size).toBeLessThan(found.size);
  }, 60_000);
});
