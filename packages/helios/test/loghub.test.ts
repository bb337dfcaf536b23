import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createStream, evalExpr, parseDdl, RowParser, Stream, tokenize } from '@strata/helios';
import { describe, expect, it } from 'vitest';

// Templates follow the log formats of the loghub benchmark (logpai/loghub), adapted to this template
// language (no optional groups).
const samples: Record<string, { template: string; columns: string; index: string }> = {
  HDFS: {
    template: '<Date> <Time> <Pid> <Level> <Component>: <Content>',
    columns: 'ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT',
    index: 'level, component, TOKENS(content)',
  },
  BGL: {
    template: '<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>',
    columns: 'timestamp TIMESTAMP, node STRING, component STRING, level STRING, content TEXT',
    index: 'node, level, TOKENS(content)',
  },
  HPC: {
    template: '<LogId> <Node> <Component> <State> <Time> <Flag> <Content>',
    columns: 'logid INT, node STRING, component STRING, state STRING, time TIMESTAMP, content TEXT',
    index: 'node, state, TOKENS(content)',
  },
  Linux: {
    template: '<Month> <Day> <Time> <Host> <Component>: <Content>',
    columns: 'host STRING, component STRING, content TEXT',
    index: 'component, TOKENS(content)',
  },
  OpenSSH: {
    template: '<Month> <Day> <Time> <Host> sshd[<Pid>]: <Content>',
    columns: 'pid INT, content TEXT',
    index: 'pid, TOKENS(content)',
  },
  HealthApp: {
    template: '<Time>|<Component>|<Pid>|<Content>',
    columns: 'component STRING, pid INT, content TEXT',
    index: 'component, TOKENS(content)',
  },
  Proxifier: {
    template: '[<Time>] <Program> - <Content>',
    columns: 'program STRING, content TEXT',
    index: 'program, TOKENS(content)',
  },
  Spark: {
    template: '<Date> <Time> <Level> <Component>: <Content>',
    columns: 'level STRING, component STRING, content TEXT',
    index: 'level, component, TOKENS(content)',
  },
  Zookeeper: {
    template: '<Date> <Time> - <Level> <Node> - <Content>',
    columns: 'level STRING, node STRING, content TEXT',
    index: 'level, TOKENS(content)',
  },
  Android: {
    template: '<Date> <Time> <Pid> <Tid> <Level> <Component>: <Content>',
    columns: 'pid INT, tid INT, level STRING, component STRING, content TEXT',
    index: 'level, component, TOKENS(content)',
  },
  OpenStack: {
    template: '<Logrecord> <Date> <Time> <Pid> <Level> <Component> [<ADDR>] <Content>',
    columns: 'pid INT, level STRING, component STRING, content TEXT',
    index: 'level, component, TOKENS(content)',
  },
};

const root = [resolve(process.cwd(), '../shared/data/loghub'), '/work/shared/data/loghub'].find((p) =>
  existsSync(p),
);

describe('loghub samples', () => {
  it('the samples are present (they ship with the workspace)', () => {
    expect(root, 'loghub samples not found under ../shared/data/loghub').toBeDefined();
  });
  for (const [name, spec] of Object.entries(samples)) {
    it(`${name}: parses, and queries return exactly what a scan of the raw lines returns`, async () => {
      const file = join(root!, name, `${name}_2k.log`);
      const ddl = `CREATE STREAM ${name.toLowerCase()} SOURCES ('file:${name}_2k.log')
        FORMAT loghub('${spec.template}') COLUMNS (${spec.columns}) INDEX (${spec.index})`;
      const def = parseDdl(ddl, `${name}.sql`);
      const lines = readFileSync(file, 'utf8').split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      const parser = new RowParser(def);
      const rows = lines.map((l) => parser.row(l));
      const contentCol = def.columns.findIndex((c) => c.name === 'content');
      const firstCol = 0;
      const parsed = rows.filter((r) => r[firstCol] !== null).length;
      expect(parsed / rows.length, `${name}: share of lines the template matches`).toBeGreaterThan(0.95);
      const dir = mkdtempSync(join(tmpdir(), 'helios-loghub-'));
      try {
        createStream(dir, ddl);
        const s = await Stream.open(dir, def.name, { mergeKeysMax: 3000, addKeysMax: 30_000, fanoutMax: 8 });
        try {
          await s.ingestFile(file, { chunkBytes: 32 * 1024 });
          await s.indexStep(Math.ceil(s.blockCount / 2));
          // A rare token (it occurs in exactly one line), a frequent indexed value, and a conjunction.
          const counts = new Map<string, number>();
          for (const r of rows)
            for (const t of new Set(tokenize(String(r[contentCol] ?? ''))))
              counts.set(t, (counts.get(t) ?? 0) + 1);
          const rare = [...counts].find(([t, n]) => n === 1 && /\d/.test(t) && !t.includes("'"))?.[0];
          const idxCol = def.index.find((d) => !d.tokens)!.column;
          const ci = def.columns.findIndex((c) => c.name === idxCol);
          const v = rows.find((r) => r[ci] !== null)![ci]!;
          const lit = typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`;
          const queries = [`${idxCol} = ${lit}`, `NOT ${idxCol} = ${lit}`];
          if (rare)
            queries.push(`content CONTAINS '${rare}'`, `content CONTAINS '${rare}' OR ${idxCol} = ${lit}`);
          for (const q of queries) {
            const e = s.parse(q);
            const want = rows.filter((r) => evalExpr(e, r));
            const got = await s.search(e);
            expect(got.rows, `${name}: ${q}`).toEqual(want);
          }
          if (rare) {
            await s.indexAll();
            const got = await s.search(s.parse(`content CONTAINS '${rare}'`));
            expect(got.rows.length).toBe(1);
            const raw = lines.filter((l) => l.includes(rare)).length;
            expect(raw).toBeGreaterThanOrEqual(1);
            expect(got.stats.blocksRead).toBeLessThanOrEqual(raw);
          }
        } finally {
          await s.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
