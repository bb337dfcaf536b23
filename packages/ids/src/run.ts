/** Running a capture through the engine: decode every packet, inspect it, collect alerts and stats. */
import { createReadStream } from 'node:fs';
import { decode, newDecodeStats } from './decode.js';
import { Defragmenter, type DefragOptions, type DefragStats } from './defrag.js';
import { type Alert, Engine, type EngineOptions, type EngineStats } from './detect.js';
import type { FlowTableStats } from './flow.js';
import { readCapture } from './pcap.js';
import { parseRule, type Rule, RuleSyntaxError } from './rules.js';

export interface RunResult {
  alerts: Alert[];
  packets: number;
  bytes: number;
  seconds: number;
  decodeFailures: number;
  rulesLoaded: number;
  rulesSkipped: { sid: number; reason: string }[];
  errors: string[];
  stats: EngineStats;
  flows: FlowTableStats;
  defrag: DefragStats | undefined;
  /** Most bytes held by stream reassembly at once. */
  reassemblyPeakBytes: number;
}

/** Parses rule text line by line; every syntax error is collected with file:line:column. */
export function loadRules(text: string, file: string): { rules: Rule[]; errors: string[] } {
  const rules: Rule[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((l, i) => {
    const t = l.trim();
    if (!t || t.startsWith('#')) return;
    try {
      rules.push(parseRule(t, file, i + 1));
    } catch (e) {
      if (e instanceof RuleSyntaxError) errors.push(e.message);
      else throw e;
    }
  });
  return { rules, errors };
}

export async function runCapture(
  pcapPath: string,
  rules: Rule[],
  opts: EngineOptions & { validateChecksums?: boolean; defrag?: boolean | DefragOptions } = {},
): Promise<RunResult> {
  const engine = new Engine(rules, opts);
  const st = newDecodeStats();
  // reassembled datagrams are decoded again; their own counts stay apart from the capture's packets
  const reStats = newDecodeStats();
  const defrag =
    opts.defrag === false
      ? undefined
      : new Defragmenter({
          ...(opts.overlapPolicy && { policy: opts.overlapPolicy }),
          ...(typeof opts.defrag === 'object' && opts.defrag),
        });
  const alerts: Alert[] = [];
  let bytes = 0;
  const t0 = performance.now();
  let n = 0;
  for await (const p of readCapture(createReadStream(pcapPath))) {
    n++;
    bytes += p.data.length;
    let d = decode(p.linkType, p.data, st);
    if (typeof d === 'string') continue;
    if (d.frag && defrag) {
      const whole = defrag.add(d, p.tsUs);
      if (!whole) continue;
      const r = decode(101, whole, reStats);
      if (typeof r === 'string') continue;
      d = r;
    }
    // Suricata's checksum validation: a packet with a bad checksum is still inspected on its own, but it
    // does not move TCP state or go into a stream
    const checksumOk = opts.validateChecksums === false || (d.ipChecksumOk && d.l4ChecksumOk);
    for (const a of engine.inspect(d, p.tsUs, n, checksumOk)) alerts.push(a);
  }
  for (const a of engine.finish()) alerts.push(a);
  return {
    alerts,
    packets: st.packets,
    bytes,
    seconds: (performance.now() - t0) / 1000,
    decodeFailures: st.packets - st.decoded + reStats.packets - reStats.decoded,
    defrag: defrag?.stats,
    rulesLoaded: engine.compiled.length,
    rulesSkipped: engine.skipped,
    errors: [],
    stats: engine.stats,
    flows: engine.flowStats,
    reassemblyPeakBytes: engine.budget.peakBytes,
  };
}
