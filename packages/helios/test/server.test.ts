import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockId, createStream, runAgentOnce, Stream, startIngestServer } from '@strata/helios';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'helios-server-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ddl = `CREATE STREAM ev SOURCES ('x') FORMAT logfmt COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('ingestion server and agent over HTTP', () => {
  it('ships a file, acknowledges after commit, dedupes resends, retries while the server is down', async () => {
    createStream(dir, ddl);
    const file = join(dir, 'app.log');
    const line = (i: number) => `n=${i} user=u${i % 5} msg="request id_${i} done"`;
    writeFileSync(file, `${Array.from({ length: 2000 }, (_, i) => line(i)).join('\n')}\n`);
    const port = await freePort();
    // The agent starts first: the server comes up 300 ms later and the agent's retries get through.
    const agent = runAgentOnce({ url: `http://127.0.0.1:${port}`, stream: 'ev', file, chunkBytes: 8192 });
    await new Promise((r) => setTimeout(r, 300));
    const srv = await startIngestServer(dir, { port, index: true });
    try {
      const st = await agent;
      expect(st.lines).toBe(2000);
      expect(st.retries).toBeGreaterThan(0);
      appendFileSync(file, `${line(2000)}\n${line(2001)}\npartial`);
      const st2 = await runAgentOnce({
        url: `http://127.0.0.1:${port}`,
        stream: 'ev',
        file,
        chunkBytes: 8192,
      });
      expect(st2.lines).toBe(2);
      // A resent chunk (a lost acknowledgement) is acknowledged and not written twice.
      const chunk = Buffer.from(`${line(7)}\n`);
      const id = blockId('manual', 0, chunk.length, chunk);
      const post = (key?: string) =>
        fetch(`http://127.0.0.1:${port}/streams/ev/chunks?source=manual&from=0&to=${chunk.length}`, {
          method: 'POST',
          body: chunk,
          headers: key === undefined ? {} : { 'idempotency-key': key },
        });
      expect(await (await post(id)).json()).toMatchObject({ new: true });
      expect(await (await post(id)).json()).toMatchObject({ new: false });
      const bad = await post('0000000000000000');
      expect(bad.status).toBe(400);
      expect(await bad.text()).toMatch(/not the block id/);
      // no key at all is named as such (it read 'Idempotency-Key undefined'); a long one is cut in the answer
      expect(await (await post()).json()).toEqual({
        error: `no Idempotency-Key header: it must be the block id ${id}`,
      });
      const long = (await (await post('k'.repeat(5000))).json()) as { error: string };
      expect(long.error).toBe(`Idempotency-Key ${'k'.repeat(80)}... is not the block id ${id}`);
      // a source offset below 0 is no offset (it was taken)
      const neg = await fetch(`http://127.0.0.1:${port}/streams/ev/chunks?source=manual&from=-9&to=-8`, {
        method: 'POST',
        body: 'x',
        headers: { 'idempotency-key': blockId('manual', -9, -8, Buffer.from('x')) },
      });
      expect(neg.status).toBe(400);
      expect(await neg.json()).toEqual({
        error: 'need source, from >= 0, to (and leaf=N) with to - from + N = body length',
      });
      expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
      // a stream that is not there: named, without the server's data directory (it was in the answer)
      const missing = await fetch(`http://127.0.0.1:${port}/streams/gone`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: "no stream 'gone'" });
    } finally {
      await srv.close();
    }
    const s = await Stream.open(dir, 'ev');
    try {
      const all = await s.search(s.parse(''));
      expect(all.rows.length).toBe(2003);
      const ns = all.rows.map((r) => r[0] as number).sort((a, b) => a - b);
      expect(ns.filter((x) => x === 7).length).toBe(2); // once from the file, once from the manual chunk
      expect(new Set(ns).size).toBe(2002);
      expect(s.indexedBlocks).toBe(s.blockCount);
      const r = await s.search(s.parse("msg CONTAINS 'id_1999'"));
      expect(r.rows.length).toBe(1);
      expect(r.stats.blocksRead).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('maintainEveryMs: each stream it opened is maintained every period, queued behind its chunks, until close', async () => {
    const d = join(dir, 'maintained');
    createStream(d, ddl);
    const file = join(d, 'app.log');
    writeFileSync(
      file,
      `${Array.from({ length: 600 }, (_, i) => `n=${i} user=u${i % 5} msg="id_${i}"`).join('\n')}\n`,
    );
    await expect(startIngestServer(d, { maintainEveryMs: 0 })).rejects.toThrow(/maintainEveryMs 0 is not/);
    const log: string[] = [];
    const srv = await startIngestServer(d, {
      index: true,
      maintainEveryMs: 15,
      log: (l) => log.push(l),
      policy: { compactEveryBlocks: 2 },
    });
    const maintained = () =>
      log.filter((l) =>
        /^maintain ev: moved \d+ objects to standard, expired 0 blocks, deleted \d+ objects$/.test(l),
      ).length;
    try {
      expect(maintained()).toBe(0); // a stream is maintained once the server has opened it
      await runAgentOnce({ url: `http://127.0.0.1:${srv.port}`, stream: 'ev', file, chunkBytes: 1024 });
      for (let i = 0; i < 400 && maintained() < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(maintained()).toBeGreaterThanOrEqual(3);
    } finally {
      await srv.close();
    }
    expect(log.filter((l) => !l.startsWith('maintain ev: moved'))).toEqual([]); // no failures
    const n = log.length;
    await new Promise((r) => setTimeout(r, 60));
    expect(log.length).toBe(n); // nothing runs after close
    const s = await Stream.open(d, 'ev');
    try {
      expect((await s.search(s.parse("user = 'u3'"))).rows.length).toBe(120);
      expect((await s.search(s.parse("msg CONTAINS 'id_599'"))).rows.length).toBe(1);
    } finally {
      await s.close();
    }
  });
});

describe('searches over HTTP', () => {
  it('answers GET /streams/NAME/search with the rows, in pages by cursor, and names a bad parameter', async () => {
    const d = join(dir, 'searched');
    createStream(d, ddl);
    const file = join(d, 'app.log');
    writeFileSync(
      file,
      `${Array.from({ length: 300 }, (_, i) => `n=${i} user=u${i % 5} msg="request id_${i} done"`).join('\n')}\n`,
    );
    const srv = await startIngestServer(d, { index: true });
    const url = (q: string) => `http://127.0.0.1:${srv.port}/streams/ev/search?${q}`;
    const get = async (q: string) => {
      const r = await fetch(url(q));
      return {
        status: r.status,
        body: (await r.json()) as { rows?: { n: number }[]; cursor?: string; error?: string },
      };
    };
    try {
      await runAgentOnce({ url: `http://127.0.0.1:${srv.port}`, stream: 'ev', file, chunkBytes: 1024 });
      const one = await get(`where=${encodeURIComponent("msg CONTAINS 'id_42'")}`);
      expect(one).toEqual({
        status: 200,
        body: { rows: [{ n: 42, user: 'u2', msg: 'request id_42 done' }] },
      });
      // pages of 25 over user u3's 60 rows, joined: every row once, in log order
      const where = encodeURIComponent("user = 'u3'");
      const seen: number[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const r = await get(
          `where=${where}&limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        expect(r.status).toBe(200);
        seen.push(...r.body.rows!.map((x) => x.n));
        cursor = r.body.cursor;
        if (cursor === undefined) break;
      }
      expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => 3 + 5 * i));
      const bad: [string, RegExp][] = [
        ['where=' + encodeURIComponent('user ='), /^where: /],
        ['where=&limit=-1', /^limit '-1': a whole number from 0 to 10000/],
        ['where=&limit=10001', /^limit '10001'/],
        ['where=&cursor=page2', /malformed cursor 'page2'/],
        ['where=&since=yesterday', /^since 'yesterday' is not a timestamp/],
        ['q=x', /^unknown parameter 'q' \(where, limit, cursor, since, until\)/],
      ];
      for (const [q, msg] of bad) {
        const r = await get(q);
        expect(r.status, q).toBe(400);
        expect(r.body.error, q).toMatch(msg);
      }
      expect((await get('where=')).body.rows).toHaveLength(100); // the default limit
      const missing = await fetch(`http://127.0.0.1:${srv.port}/streams/nope/search?where=`);
      expect(missing.status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});
