// Child process for ingest.bench.ts: helios' needle queries in a fresh process over the stored stream, as
// a query server opened over it meets them (and as DuckDB's anchor runs, in duckdb-child.ts). In the
// bench's own process the queries run right after a 10M-line ingest, whose garbage the collector is still
// working off: the same query (the 42nd) was the slowest there in every calm run of 2026-12-03.
// Usage: needle-child.ts DIR STREAM ROUNDS NEEDLE... Prints one JSON line: each query's latency in order
// (round by round) and the rows the last one matched.
import { Stream } from '@strata/helios';
import { searchNeedles } from './needles.js';

const [dir, name, roundsArg, ...needles] = process.argv.slice(2);
const rounds = Number(roundsArg);
if (!dir || !name || !Number.isInteger(rounds) || rounds < 1 || needles.length === 0)
  throw new Error('needle-child: usage: needle-child.ts DIR STREAM ROUNDS NEEDLE...');
const s = await Stream.open(dir, name);
const { latMs, rows } = await searchNeedles(s, needles, rounds);
await s.close();
process.stdout.write(`${JSON.stringify({ latMs, rows })}\n`);
