// A json or logfmt column that no line gives a value: ingestFile names it (IngestStats.emptyColumns) and
// `strata stream ingest` warns on stderr. (A regex or loghub DDL refuses such a column: ddl.test.ts.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { commands, createStream, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'helios-empty-columns-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const lines = {
  json: [
    '{"ts":"2024-01-01T00:00:00Z","user":"a","msg":"hi"}',
    '{"ts":"2024-01-01T00:00:01Z","user":"b","msg":"yo"}',
  ],
  logfmt: ['ts=2024-01-01T00:00:00Z user=a msg=hi', 'ts=2024-01-01T00:00:01Z user=b msg=yo'],
};

describe('ingestFile: columns no line gives a value', () => {
  for (const format of ['json', 'logfmt'] as const)
    it(`${format}: a misspelt column is named, one of another type too; a column some line gives is not`, async () => {
      const dir = join(root, format);
      // usr: no line has it; n: a field, never an INT
      createStream(
        dir,
        `CREATE STREAM ev SOURCES ('x') FORMAT ${format} COLUMNS (ts TIMESTAMP, usr STRING, msg TEXT, user INT)`,
      );
      const file = join(dir, 'ev.log');
      writeFileSync(file, `${lines[format].join('\n')}\n`);
      const s = await Stream.open(dir, 'ev');
      try {
        const st = await s.ingestFile(file);
        expect(st.lines).toBe(2);
        expect(st.emptyColumns).toEqual(['usr', 'user']);
        // nothing new ingested: nothing to say
        expect((await s.ingestFile(file)).emptyColumns).toBeUndefined();
      } finally {
        await s.close();
      }
      const ok = join(root, `${format}-ok`);
      createStream(
        ok,
        `CREATE STREAM ev SOURCES ('x') FORMAT ${format} COLUMNS (ts TIMESTAMP, user STRING, msg TEXT)`,
      );
      writeFileSync(join(ok, 'ev.log'), `${lines[format].join('\n')}\nnot a ${format} line at all {\n`);
      const s2 = await Stream.open(ok, 'ev');
      try {
        expect((await s2.ingestFile(join(ok, 'ev.log'))).emptyColumns).toBeUndefined();
      } finally {
        await s2.close();
      }
    });

  it('strata stream ingest warns on stderr, naming the file and the column', async () => {
    const dir = join(root, 'cli');
    createStream(
      dir,
      "CREATE STREAM ev SOURCES ('x') FORMAT json COLUMNS (ts TIMESTAMP, usr STRING, msg TEXT)",
    );
    writeFileSync(join(dir, 'ev.log'), `${lines.json.join('\n')}\n`);
    const c = captureIo('', {}, dir);
    const cmd = commands.find((x) => x.name === 'stream')!;
    expect(await runCommand(cmd, ['ingest', 'ev', 'ev.log', '--data', dir, '--quiet'], c.io)).toBe(0);
    expect(c.stderr()).toContain(
      `${join(dir, 'ev.log')}: warning: column 'usr' has no value in any of the 2 lines ingested`,
    );
  });
});
