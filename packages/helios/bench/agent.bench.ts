/**
 * The agent's CPU and memory at a steady 20,000 lines/s (the target: under 25% of a core with
 * local indexing, memory within its bound). The agent runs alone in a child process reading stdin
 * (`runAgentStream`, as `strata stream agent STREAM -` does); this process writes loghub HDFS lines into
 * its stdin at the rate and runs the ingestion server. Anchor: the same agent without local leaves.
 *
 *   npm run bench -- helios agent                    # 20,000 lines/s for 10 s
 *   npm run bench -- helios agent -- --rate 50000 --seconds 20
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table, writeResults } from '@strata/bench';
import { type AgentStats, createStream, startIngestServer } from '@strata/helios';
import { hdfsSampleLines } from './sample.js';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const rate = arg('rate', 20_000);
const seconds = arg('seconds', 10);
const base = hdfsSampleLines();

const dir = mkdtempSync(join(tmpdir(), 'helios-agent-bench-'));
const ddl = `CREATE STREAM hdfs SOURCES ('stdin') FORMAT loghub('<Date> <Time> <Pid> <Level> <Component>: <Content>')
  COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT)
  INDEX (level, component, TOKENS(content)) CHUNK EVERY 1 SECONDS OR 4 MB`;
createStream(dir, ddl);
const srv = await startIngestServer(dir, { index: false });

async function run(local: boolean, compress: boolean): Promise<AgentStats> {
  const c = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'agent-child.ts'),
      `http://127.0.0.1:${srv.port}`,
      'hdfs',
      local ? '1' : '0',
      compress ? '1' : '0',
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  c.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const tickMs = 50;
  const perTick = Math.round((rate * tickMs) / 1000);
  let n = 0;
  const t0 = performance.now();
  for (let tick = 0; tick < (seconds * 1000) / tickMs; tick++) {
    const lines: string[] = [];
    for (let i = 0; i < perTick; i++, n++)
      lines.push(base[n % base.length]!.replace(/blk_-?\d+/, `blk_${7_000_000_000 + n}`));
    if (!c.stdin.write(`${lines.join('\n')}\n`)) await new Promise((r) => c.stdin.once('drain', r));
    const wait = t0 + (tick + 1) * tickMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  c.stdin.end();
  await new Promise((r) => c.on('exit', r));
  const st = JSON.parse(out) as AgentStats;
  if (st.lines !== n) throw new Error(`bench: agent shipped ${st.lines} lines of ${n}`);
  return st;
}

const on = await run(true, true);
const raw = await run(true, false);
const off = await run(false, false);
await srv.close();
rmSync(dir, { recursive: true, force: true });
const row = (name: string, s: AgentStats) => [
  name,
  `${Math.round(s.lines / (s.elapsedMs / 1000)).toLocaleString('en-US')}`,
  `${s.cpuPercent.toFixed(1)}%`,
  `${(s.rssBytes / 2 ** 20).toFixed(0)} MiB`,
  `${(s.bufferedBytesPeak / 2 ** 20).toFixed(1)} / ${(s.memoryBytesMax / 2 ** 20).toFixed(1)} MiB`,
  `${s.chunks} (${s.chunksByTime} by time)`,
  `${(s.wireBytes / 2 ** 20).toFixed(1)} MiB`,
];
console.log(
  table(
    ['agent', 'lines/s', 'CPU (% of a core)', 'RSS', 'buffers peak / bound', 'chunks', 'on the wire'],
    [
      row('local leaves + deflate (default)', on),
      row('local leaves, no deflate', raw),
      row('no local leaves, no deflate (anchor)', off),
    ],
  ),
);
console.log(
  `ratio: local leaves + deflate cost ${(on.cpuPercent / Math.max(off.cpuPercent, 0.01)).toFixed(2)}x the CPU of shipping alone`,
);
writeResults('bench/results', `agent-${rate}`, { rate, seconds, on, raw, off });
