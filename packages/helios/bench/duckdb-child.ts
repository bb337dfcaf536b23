// Child process for ingest.bench.ts: DuckDB's contains() anchor in a fresh process. Run inside the bench's
// process after a 10M-line helios ingest, its queries took 442-713 ms against 249-292 ms alone (2026-12-03).
// Prints one JSON line: the latency of each query and the rows the last one counted.
import { DuckDBInstance } from '@duckdb/node-api';

const [file, ...needles] = process.argv.slice(2);
if (!file || needles.length === 0) throw new Error('duckdb-child: usage: duckdb-child.ts FILE NEEDLE...');
const duck = await DuckDBInstance.create(':memory:', { threads: '2' });
const con = await duck.connect();
await con.run(
  `CREATE TABLE logs AS SELECT * FROM read_csv('${file}', columns = {'line': 'VARCHAR'}, delim = '\u0001', header = false, quote = '', escape = '')`,
);
const latMs: number[] = [];
let rows = 0;
for (const n of needles) {
  const t = performance.now();
  const r = await con.runAndReadAll(`SELECT count(*) FROM logs WHERE contains(line, '${n}')`);
  latMs.push(performance.now() - t);
  rows = Number(r.getRows()[0]![0]);
}
process.stdout.write(`${JSON.stringify({ latMs, rows })}\n`);
