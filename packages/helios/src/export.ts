/**
 * Index as data: a stream's rows and its live index nodes as Parquet (zstd), written through DuckDB, so
 * DuckDB, Spark or Trino read them directly.
 *
 *   DIR/rows.parquet   one row per stream row: the stream's columns (TIMESTAMP as TIMESTAMP), _block, _row
 *   DIR/index.parquet  one row per (node, key, child): level, node_from, node_to, node_key, key, child
 */
import { createWriteStream, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { makeDirsSync, wellFormed } from '@strata/cli';
import type { Cell } from './formats.js';
import type { Stream } from './stream.js';

/** Bound on buffered NDJSON text before it is flushed to the staging file, in bytes. */
export const exportBufferBytesMax = 4 << 20;

async function writeLines(path: string, gen: AsyncGenerator<string> | Generator<string>): Promise<number> {
  let n = 0;
  async function* batches() {
    let buf = '';
    for await (const l of gen) {
      buf += `${l}\n`;
      n++;
      if (buf.length >= exportBufferBytesMax) {
        yield buf;
        buf = '';
      }
    }
    if (buf !== '') yield buf;
  }
  // a pipeline waits for room and rejects with the file's error (a full disk), where a bare stream's
  // 'error' with no listener ended the process
  await pipeline(batches(), createWriteStream(path));
  return n;
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * A cell as the staging NDJSON carries it to DuckDB: a string with a lone surrogate (a JSON input's
 * `"\ud800"`) gets U+FFFD in its place, as UTF-8 (Parquet's strings) cannot hold one; an INT past 2^53
 * (ingested before 2026-12-05, when such cells were kept, rounded) is null. Each failed the whole export.
 */
function exportCell(type: string, v: Cell | undefined): Cell {
  if (v === undefined) return null;
  if (typeof v === 'string') return wellFormed(v);
  if (type === 'INT' && typeof v === 'number' && !Number.isSafeInteger(v)) return null;
  return v;
}

export interface ExportResult {
  rows: number;
  indexEntries: number;
  files: string[];
}

/** Writes rows.parquet and index.parquet under `dir`. */
export async function exportParquet(stream: Stream, dir: string): Promise<ExportResult> {
  const out = resolve(dir);
  makeDirsSync(out);
  const stage = join(out, '.staging');
  makeDirsSync(stage);
  const def = stream.def;
  try {
    const rowsPath = join(stage, 'rows.ndjson');
    const rows = await writeLines(
      rowsPath,
      (async function* () {
        for await (const b of stream.scan())
          for (let i = 0; i < b.rows.length; i++) {
            const o: Record<string, unknown> = {};
            def.columns.forEach((c, k) => {
              o[c.name] = exportCell(c.type, b.rows[i]![k]);
            });
            o._block = b.seq;
            o._row = i;
            yield JSON.stringify(o);
          }
      })(),
    );
    const idxPath = join(stage, 'index.ndjson');
    const indexEntries = await writeLines(idxPath, stream.indexEntries());
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    try {
      const typeOf = (t: string) =>
        t === 'INT' ? 'BIGINT' : t === 'FLOAT' ? 'DOUBLE' : t === 'TIMESTAMP' ? 'BIGINT' : 'VARCHAR';
      const cols = [
        ...def.columns.map((c) => `${sqlString(c.name)}: ${sqlString(typeOf(c.type))}`),
        "'_block': 'BIGINT'",
        "'_row': 'BIGINT'",
      ].join(', ');
      const select = [
        ...def.columns.map((c) =>
          c.type === 'TIMESTAMP' ? `epoch_ms("${c.name}") AS "${c.name}"` : `"${c.name}"`,
        ),
        '_block',
        '_row',
      ].join(', ');
      const rowsFile = join(out, 'rows.parquet');
      const idxFile = join(out, 'index.parquet');
      await con.run(
        `COPY (SELECT ${select} FROM read_json(${sqlString(rowsPath)}, format = 'newline_delimited', columns = {${cols}})) TO ${sqlString(rowsFile)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      await con.run(
        `COPY (SELECT * FROM read_json(${sqlString(idxPath)}, format = 'newline_delimited', columns = {'level': 'INTEGER', 'node_from': 'BIGINT', 'node_to': 'BIGINT', 'node_key': 'VARCHAR', 'key': 'BIGINT', 'child': 'VARCHAR'})) TO ${sqlString(idxFile)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      return { rows, indexEntries, files: [rowsFile, idxFile] };
    } finally {
      con.closeSync();
      db.closeSync();
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
