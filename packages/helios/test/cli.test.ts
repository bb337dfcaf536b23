import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import { commands, demos, hdfsDdl, Stream } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'helios-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const c = captureIo('', {}, dir);
  const [name, ...rest] = argv;
  const cmd = commands.find((x) => x.name === name)!;
  const code = await runCommand(cmd, rest, c.io);
  return { code, out: c.stdout(), err: c.stderr() };
}

describe('embedded mode CLI', () => {
  it('create, ingest, search --count under --data, one after another', async () => {
    writeFileSync(join(dir, 'hdfs.sql'), hdfsDdl);
    const lines = [
      '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating',
      '081109 203807 222 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block blk_-6952295868487656571 terminating',
      '081109 204005 35 WARN dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864',
    ];
    writeFileSync(join(dir, 'a.log'), `${lines.join('\n')}\n`);
    expect((await run('stream', 'create', '--ddl', 'hdfs.sql', '--data', 'd')).out).toMatch(
      /created stream hdfs/,
    );
    const ing = await run('stream', 'ingest', 'hdfs', 'a.log', '--data', 'd');
    expect(ing.code).toBe(0);
    expect(ing.out).toMatch(/ingested 3 lines/);
    const c = await run(
      'search',
      'hdfs',
      '--where',
      "content CONTAINS 'blk_-6952295868487656571'",
      '--count',
      '--data',
      'd',
    );
    expect(c).toEqual({ code: 0, out: '1\n', err: '' });
    expect((await run('search', 'hdfs', '--where', "level = 'INFO'", '--count', '--data', 'd')).out).toBe(
      '2\n',
    );
    const j = await run('search', 'hdfs', '--where', "level = 'WARN'", '--json', '--data', 'd');
    expect(JSON.parse(j.out).component).toBe('dfs.FSNamesystem');
    const ex = await run('search', 'hdfs', '--where', 'pid = 35', '--count', '--explain', '--data', 'd');
    expect(ex.out).toMatch(/^1\nplan: hybrid index scan/);
    expect(ex.out).toMatch(
      /\nnodes read: \d+ \(orphans visited: \d+\); node bytes fetched: \d+ in \d+ gets\n/,
    );
    const ts = await run('search', 'hdfs', '--since', '2008-11-09T20:38:00Z', '--count', '--data', 'd');
    expect(ts.out).toBe('2\n');
    expect((await run('stream', 'ingest', 'hdfs', 'a.log', '--data', 'd')).out).toMatch(/ingested 0 lines/);
    expect((await run('stream', 'erase', 'hdfs', '--where', 'pid = 35', '--data', 'd')).out).toMatch(
      /erased 1 rows/,
    );
    expect((await run('search', 'hdfs', '--count', '--data', 'd')).out).toBe('2\n');
    expect((await run('stream', 'info', 'hdfs', '--data', 'd')).out).toMatch(/2 rows in 1 blocks/);
  });

  it('a last line without a newline waits for the next run (a writer may be in it), or goes in with --final', async () => {
    writeFileSync(join(dir, 'hdfs.sql'), hdfsDdl);
    const line = (i: number, tail = '') =>
      `081109 2036${String(i).padStart(2, '0')} 148 INFO dfs.DataNode: served block_${i}${tail}`;
    expect((await run('stream', 'create', '--ddl', 'hdfs.sql', '--data', 'u')).code).toBe(0);
    // the writer is in the middle of the third line
    writeFileSync(join(dir, 'u.log'), `${line(1)}\n${line(2)}\n${line(3).slice(0, 30)}`);
    const first = await run('stream', 'ingest', 'hdfs', 'u.log', '--data', 'u');
    expect(first.out).toMatch(/ingested 2 lines/);
    expect(first.err).toContain(
      'u.log: its last 30 bytes are a line without a newline, left for the next run',
    );
    // it finishes the line: the next run takes it whole (before, its two parts were two rows)
    writeFileSync(join(dir, 'u.log'), `${line(1)}\n${line(2)}\n${line(3, ' done')}\n`);
    expect((await run('stream', 'ingest', 'hdfs', 'u.log', '--data', 'u')).out).toMatch(/ingested 1 lines/);
    const q = (w: string) => run('search', 'hdfs', '--where', w, '--count', '--data', 'u');
    expect((await q('pid = 148')).out).toBe('3\n');
    expect((await q("content CONTAINS 'block_3'")).out).toBe('1\n');
    // a complete file without a final newline: --final ingests its last line
    expect((await run('stream', 'create', '--ddl', 'hdfs.sql', '--data', 'v')).code).toBe(0);
    writeFileSync(join(dir, 'v.log'), `${line(1)}\n${line(2)}`);
    const fin = await run('stream', 'ingest', 'hdfs', 'v.log', '--final', '--data', 'v');
    expect(fin.out).toMatch(/ingested 2 lines/);
    expect(fin.err).not.toContain('without a newline');
  });

  it('compact, --compact-every and --maintain-every', async () => {
    writeFileSync(join(dir, 'hdfs.sql'), hdfsDdl);
    const lines = Array.from(
      { length: 400 },
      (_, i) =>
        `081109 2036${String(i % 60).padStart(2, '0')} ${100 + (i % 3)} ${i % 2 ? 'INFO' : 'WARN'} dfs.DataNode: served block_${i % 4}`,
    );
    writeFileSync(join(dir, 'c.log'), `${lines.join('\n')}\n`);
    expect((await run('stream', 'create', '--ddl', 'hdfs.sql', '--data', 'c')).code).toBe(0);
    const ing = await run(
      'stream',
      'ingest',
      'hdfs',
      'c.log',
      '--chunk',
      '1024',
      '--no-index',
      '--compact-every',
      '0',
      '--data',
      'c',
    );
    expect(ing.code).toBe(0);
    // an index whose level-0 nodes closed at 4 blocks (fanoutMax) with few keys: work for compaction
    const s = await Stream.open(join(dir, 'c'), 'hdfs', { fanoutMax: 4, compactEveryBlocks: 0 });
    await s.indexAll();
    await s.close();
    const cj = JSON.parse((await run('stream', 'compact', 'hdfs', '--json', '--data', 'c')).out);
    expect(cj.nodesAfter).toBeLessThan(cj.nodesBefore);
    expect(cj.runs).toBeGreaterThan(0);
    expect((await run('stream', 'compact', 'hdfs', '--data', 'c')).out).toMatch(
      /^merged 0 nodes into 0 .*: (\d+) -> \1 nodes/,
    );
    expect((await run('search', 'hdfs', '--where', "level = 'WARN'", '--count', '--data', 'c')).out).toBe(
      '200\n',
    );
    const ix = await run(
      'stream',
      'index',
      'hdfs',
      '--maintain-every',
      '10m',
      '--compact-every',
      '8',
      '--json',
      '--data',
      'c',
    );
    expect(JSON.parse(ix.out)).toMatchObject({ maintainRuns: 0, maintainFailures: 0 });
    for (const bad of ['10', '0s', 'soon']) {
      const r = await run('stream', 'index', 'hdfs', '--maintain-every', bad, '--data', 'c');
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/--maintain-every: '.*' is/);
    }
    const neg = await run('stream', 'ingest', 'hdfs', 'c.log', '--compact-every=-1', '--data', 'c');
    expect(neg.err).toMatch(/--compact-every: -1 is out of range/);
    // a poll past a timer's 2^31 - 1 ms: Node fired it after 1 ms, so the agent polled every millisecond
    const poll = await run(
      'stream',
      'agent',
      'hdfs',
      'c.log',
      '--url',
      'http://127.0.0.1:9',
      '--follow',
      '3000000000',
    );
    expect([poll.code, poll.err]).toEqual([
      2,
      expect.stringMatching(/--follow: 3000000000 is out of range \[10, 2147483647\]/),
    ]);
    // and the indexer's
    const index = await run('stream', 'index', 'hdfs', '--follow', '3000000000', '--data', 'c');
    expect(index.code).toBe(2);
    expect(index.err).toMatch(/--follow: 3000000000 is out of range \[10, 2147483647\]/);
  });

  it('errors: usage errors exit 2, bad DDL and missing streams exit 1 with where', async () => {
    writeFileSync(join(dir, 'bad.sql'), "CREATE STREAM x SOURCES ('a')\nFORMAT json COLUMNS (a BOGUS)");
    const bad = await run('stream', 'create', '--ddl', 'bad.sql', '--data', 'e');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/bad\.sql:2:24: unknown column type 'BOGUS'/);
    const missing = await run('search', 'nope', '--count', '--data', 'e');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no stream 'nope'/);
    writeFileSync(join(dir, 'ok.sql'), "CREATE STREAM ok SOURCES ('a') FORMAT json COLUMNS (a INT)");
    await run('stream', 'create', '--ddl', 'ok.sql', '--data', 'e');
    const q = await run('search', 'ok', '--where', 'b = 1', '--data', 'e');
    expect(q.code).toBe(2);
    expect(q.err).toMatch(/unknown column 'b'/);
    expect((await run('search', 'ok', '--bogus', '--data', 'e')).code).toBe(2);
    for (const c of commands) expect(c.help).toMatch(/Example:|subcommand/);
  });

  it('the demo step runs and prints what it did', async () => {
    const c = captureIo('', {}, dir);
    const d = mkdtempSync(join(tmpdir(), 'helios-demo-'));
    try {
      await demos[0]!.run(c.io, d);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
    expect(c.stdout()).toMatch(/helios: ingested \d+ lines/);
    expect(c.stdout()).toMatch(/needle with index: 1 row/);
  });
});
