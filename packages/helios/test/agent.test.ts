import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import {
  commands,
  createStream,
  type IngestServer,
  runAgentFile,
  runAgentOnce,
  runAgentStream,
  Stream,
  startIngestServer,
} from '@strata/helios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'helios-agent-'));
let srv: IngestServer;
let url = '';
beforeAll(async () => {
  srv = await startIngestServer(dir, { verifyLeaves: true });
  url = `http://127.0.0.1:${srv.port}`;
});
afterAll(async () => {
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
});

const ddl = (name: string, chunk = 'CHUNK EVERY 1 SECONDS OR 4 KB') =>
  `CREATE STREAM ${name} SOURCES ('x') FORMAT logfmt COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg)) ${chunk}`;
const line = (i: number) => `n=${i} user=u${i % 7} msg="request id_${i} done"`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every n of the stream, sorted, read by a brute-force scan of all blocks. */
async function allN(name: string): Promise<number[]> {
  const s = await Stream.open(dir, name);
  try {
    const out: number[] = [];
    for await (const b of s.scan()) for (const r of b.rows) out.push(r[0] as number);
    return out.sort((a, b) => a - b);
  } finally {
    await s.close();
  }
}

/** Stream `name` and its file of two lines, with the path of the file's checkpoint. */
function twoLines(name: string): { file: string; ckpt: string } {
  createStream(dir, ddl(name));
  const file = join(dir, `${name}.log`);
  writeFileSync(file, `${line(0)}\n${line(1)}\n`);
  return { file, ckpt: `${file}.strata-ckpt` };
}

describe('agent', () => {
  it('stdin: chunks cut by time while the stream is open, leaves built here, every line once', async () => {
    createStream(dir, ddl('st'));
    const input = new PassThrough();
    const run = runAgentStream(input, { url, stream: 'st', chunkEveryMs: 150, source: 'stdin:test' });
    for (let i = 0; i < 20; i++) input.write(`${line(i)}\n`);
    // The first lines are shipped by age, with the stream still open.
    const want = Array.from({ length: 20 }, (_, i) => i);
    for (let t = 0; t < 100 && (await allN('st')).length < 20; t++) await sleep(100);
    expect(await allN('st')).toEqual(want);
    input.write(`${line(20)}\n${line(21)}`); // the last line has no newline: shipped at the end
    input.end();
    const st = await run;
    expect(st.lines).toBe(22);
    expect(st.chunksByTime).toBeGreaterThan(0);
    expect(st.leafBytes).toBeGreaterThan(0);
    // deflated on the wire
    expect(st.wireBytes).toBeLessThan(st.bytes + st.leafBytes);
    expect(st.cpuUserMs + st.cpuSystemMs).toBeGreaterThan(0);
    expect(st.rssBytes).toBeGreaterThan(0);
    expect(st.heapUsedBytes).toBeGreaterThan(0);
    expect(await allN('st')).toEqual(Array.from({ length: 22 }, (_, i) => i));
  });

  it('stdin: a signal stops an input that never ends (tail -F | agent), and what was read is shipped', async () => {
    createStream(dir, ddl('stop', 'CHUNK EVERY 3600 SECONDS OR 4 MB'));
    const input = new PassThrough();
    const ac = new AbortController();
    const run = runAgentStream(input, { url, stream: 'stop', source: 'stdin:stop', signal: ac.signal });
    for (let i = 0; i < 30; i++) input.write(`${line(i)}\n`);
    for (let t = 0; t < 100 && input.readableLength > 0; t++) await sleep(20); // taken by the agent
    expect(await allN('stop')).toEqual([]); // neither an hour old nor 4 MB: nothing shipped yet
    ac.abort();
    // the input stays open: without the signal the run went on (SIGINT then lost the 30 lines)
    const st = await Promise.race([run, sleep(5000).then(() => 'still running' as const)]);
    input.end();
    expect(st).not.toBe('still running');
    if (st === 'still running') return;
    expect([st.lines, st.chunks]).toEqual([30, 1]);
    expect(await allN('stop')).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it("stdin: a CHUNK EVERY past a timer's 24.8 days is waited for in turns (such a timer fired after 1 ms, again and again)", async () => {
    createStream(dir, ddl('slow', 'CHUNK EVERY 30 DAYS OR 4 KB'));
    const input = new PassThrough();
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const run = runAgentStream(input, { url, stream: 'slow', source: 'stdin:slow' });
      for (let i = 0; i < 3; i++) input.write(`${line(i)}\n`);
      await sleep(400);
      expect(await allN('slow')).toEqual([]); // 3 short lines, neither 4 KB nor 30 days: none shipped yet
      input.end();
      const st = await run;
      expect([st.lines, st.chunksByTime]).toEqual([3, 0]);
      expect(await allN('slow')).toEqual([0, 1, 2]);
      // the agent woke every millisecond, a warning each time (340 in these 400 ms)
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('an agent of a stream created before the DDL bounds takes its stored DDL (a 64 MB CHUNK, a RETAIN past the Date range)', async () => {
    createStream(dir, ddl('older'));
    // as the server would hand it out for a stream created before 2026-12-05 (the agent was refused)
    const stored = ddl('older', 'CHUNK EVERY 1 SECONDS OR 64 MB RETAIN 99999999999999 DAYS');
    const input = new PassThrough();
    const run = runAgentStream(input, { url, stream: 'older', ddl: stored, source: 'stdin:older' });
    for (let i = 0; i < 5; i++) input.write(`${line(i)}\n`);
    input.end();
    const st = await run;
    expect(st.lines).toBe(5);
    expect(await allN('older')).toEqual([0, 1, 2, 3, 4]);
  });

  it('a damaged checkpoint is an error naming it; one past the end of a file cut in place ships it from 0', async () => {
    const { file, ckpt } = twoLines('ck');
    for (const bad of [
      'garbage',
      '{"offset": 5}',
      '{"source": "x", "offset": -1}',
      '{"source": "x", "offset": 1.5}',
      '[]',
    ]) {
      writeFileSync(ckpt, bad);
      await expect(runAgentOnce({ url, stream: 'ck', file }), bad).rejects.toThrow(
        `checkpoint ${ckpt} is not {"source": NAME, "offset": BYTES} (${JSON.stringify(bad)}): remove it to ship the file from its start`,
      );
    }
    rmSync(ckpt);
    expect((await runAgentOnce({ url, stream: 'ck', file })).lines).toBe(2);
    // the file cut short in place (copytruncate) and written again: its checkpoint is past its end
    writeFileSync(file, `${line(2)}\n`);
    const st = await runAgentOnce({ url, stream: 'ck', file });
    expect(st.lines).toBe(1);
    expect(await allN('ck')).toEqual([0, 1, 2]);
  });

  it('the indexer uses the shipped leaves and never reads a block', async () => {
    createStream(dir, ddl('lv'));
    const input = new PassThrough();
    const run = runAgentStream(input, { url, stream: 'lv', chunkBytes: 2048 });
    input.end(`${Array.from({ length: 400 }, (_, i) => line(i)).join('\n')}\n`);
    const st = await run;
    expect(st.chunks).toBeGreaterThan(5);
    const s = await Stream.open(dir, 'lv', { mergeKeysMax: 100, addKeysMax: 1000, fanoutMax: 4 });
    try {
      const gets: string[] = [];
      const get = s.store.get.bind(s.store);
      s.store.get = (key, o) => {
        gets.push(key);
        return get(key, o);
      };
      await s.indexAll();
      expect(s.indexedBlocks).toBe(s.blockCount);
      expect(gets.some((k) => k.startsWith('lv/leaves/'))).toBe(true);
      expect(gets.filter((k) => k.startsWith('lv/blocks/'))).toEqual([]);
      const r = await s.search(s.parse("msg CONTAINS 'id_321'"));
      expect(r.rows.map((x) => x[0])).toEqual([321]);
      expect(r.stats.tailBlocks).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('a chunk of several pages: its leaf, built a page at a time, is the one its rows give (verifyLeaves)', async () => {
    createStream(dir, ddl('pg', 'CHUNK EVERY 60 SECONDS OR 4 MB'));
    const input = new PassThrough();
    const run = runAgentStream(input, { url, stream: 'pg' });
    // 2.5 pages of 1,024 rows in one chunk; non-ASCII in a few, which the token scan gives back to JavaScript
    const rows = Array.from({ length: 2_600 }, (_, i) =>
      i % 900 === 5 ? `n=${i} user=u${i % 7} msg="café id_${i}"` : line(i),
    );
    input.end(`${rows.join('\n')}\n`);
    const st = await run;
    expect(st.chunks).toBe(1);
    expect(st.leafBytes).toBeGreaterThan(0);
    expect(await allN('pg')).toEqual(Array.from({ length: 2_600 }, (_, i) => i));
  });

  it('a chunk size that is not a whole number of bytes from 1 to 32 MiB is refused naming it (0 and NaN were taken)', async () => {
    for (const chunkBytes of [0, Number.NaN, -4096, 1.5, 64 << 20])
      await expect(
        runAgentOnce({ url, stream: 'nope', file: join(dir, 'nope.log'), chunkBytes, ddl: ddl('nope') }),
        String(chunkBytes),
      ).rejects.toThrow(
        `agent chunkBytes must be a whole number of bytes from 1 to 33554432, got ${chunkBytes}`,
      );
  });

  it('bounded memory: a slow server holds the writer back; buffers stay under the bound', async () => {
    createStream(dir, ddl('bp'));
    const chunkBytes = 16 << 10;
    const memoryBytesMax = 3 * chunkBytes + 512 * 1024;
    let acked = 0;
    const slowFetch: typeof fetch = async (u, init) => {
      await sleep(15);
      const r = await fetch(u, init);
      if (init?.method === 'POST')
        acked +=
          Number(new URL(String(u)).searchParams.get('to')) -
          Number(new URL(String(u)).searchParams.get('from'));
      return r;
    };
    const input = new PassThrough({ highWaterMark: 16 << 10 });
    const run = runAgentStream(
      input,
      { url, stream: 'bp', chunkBytes, memoryBytesMax, localIndex: false, compress: false },
      slowFetch,
    );
    const piece = Buffer.from(`${Array.from({ length: 100 }, (_, i) => line(i)).join('\n')}\n`);
    const total = 512 << 10;
    let written = 0;
    let leadMax = 0;
    while (written < total) {
      const ok = input.write(piece);
      written += piece.length;
      leadMax = Math.max(leadMax, written - acked);
      if (!ok) await once(input, 'drain');
    }
    input.end();
    const st = await run;
    expect(st.bytes).toBe(written);
    expect(st.bufferedBytesPeak).toBeLessThanOrEqual(memoryBytesMax);
    // What the writer got ahead of the server is the agent's buffers plus the pipe's, not the input size.
    expect(leadMax).toBeLessThan(memoryBytesMax + 3 * (16 << 10) + piece.length);
    expect(leadMax).toBeLessThan(total / 2);
  });

  /**
   * Stream `name` and its file of 10 lines, followed by an agent (every 20 ms, chunks cut at 100 ms);
   * `until(n)` waits (10 s at most) for n rows; `stop(n)` waits for n rows, stops the agent and gives its
   * stats.
   */
  function followed(name: string) {
    createStream(dir, ddl(name));
    const file = join(dir, `${name}.log`);
    writeFileSync(file, Array.from({ length: 10 }, (_, i) => `${line(i)}\n`).join(''));
    const ac = new AbortController();
    const run = runAgentFile(
      { url, stream: name, file, chunkEveryMs: 100 },
      { followMs: 20, signal: ac.signal },
    );
    const until = async (n: number) => {
      for (let t = 0; t < 100 && (await allN(name)).length < n; t++) await sleep(100);
    };
    const stop = async (n: number) => {
      await until(n);
      ac.abort();
      return run;
    };
    return { file, until, stop };
  }

  it('a followed file: time cuts, rotation, then stop; every line once', async () => {
    const { file, until, stop } = followed('fo');
    await until(10); // shipped by age: the file is still open
    expect((await allN('fo')).length).toBe(10);
    appendFileSync(file, `${line(10)}\n${line(11)}\n`);
    renameSync(file, `${file}.1`);
    writeFileSync(file, `${line(12)}\n`);
    await sleep(200);
    appendFileSync(file, `${line(13)}\n`);
    const st = await stop(14);
    expect(st.chunksByTime).toBeGreaterThan(0);
    expect(await allN('fo')).toEqual(Array.from({ length: 14 }, (_, i) => i));
  });

  it('a followed file cut shorter in place (copytruncate) is read again from its start; every line once', async () => {
    const { file, until, stop } = followed('ct');
    await until(10);
    // logrotate's copytruncate: the same inode cut to 0, then written again, shorter than before; it was
    // read from the old end on, so these lines were never shipped (and the file's checkpoint went on
    // past its end)
    writeFileSync(file, `${line(10)}\n${line(11)}\n`);
    const st = await stop(12);
    expect(st.truncations).toBe(1);
    expect(await allN('ct')).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('a followed file cut and written again past the offset between two looks is read again from its start', async () => {
    const { file, until, stop } = followed('rw');
    await until(10);
    // cut and written again at once, longer than before: its size never drops below the offset read, so
    // only its first bytes tell (it was read on from the old offset, in the middle of a line)
    writeFileSync(file, Array.from({ length: 20 }, (_, i) => `${line(10 + i)}\n`).join(''));
    const st = await stop(30);
    expect(st.truncations).toBe(1);
    expect(await allN('rw')).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it("a checkpoint keeps the SHA-256 of the file's first bytes: a file written again past the offset ships from 0", async () => {
    const { file, ckpt } = twoLines('hd');
    expect((await runAgentOnce({ url, stream: 'hd', file })).lines).toBe(2);
    const saved = JSON.parse(readFileSync(ckpt, 'utf8'));
    expect(saved.head).toEqual({
      bytes: statSync(file).size,
      sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
    });
    // appended: resumes at the offset
    appendFileSync(file, `${line(2)}\n`);
    expect((await runAgentOnce({ url, stream: 'hd', file })).lines).toBe(1);
    // cut and written again while the agent was down, longer than the offset: from its start
    writeFileSync(file, Array.from({ length: 5 }, (_, i) => `${line(3 + i)}\n`).join(''));
    expect((await runAgentOnce({ url, stream: 'hd', file })).lines).toBe(5);
    expect(await allN('hd')).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // a checkpoint as written before the head was kept resumes at its offset
    const size = statSync(file).size;
    writeFileSync(ckpt, JSON.stringify({ source: saved.source, offset: size }));
    appendFileSync(file, `${line(8)}\n`);
    expect((await runAgentOnce({ url, stream: 'hd', file })).lines).toBe(1);
    expect(await allN('hd')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (const head of [{ bytes: 0, sha256: saved.head.sha256 }, { bytes: 10, sha256: 'x' }, 'abc']) {
      const bad = JSON.stringify({ source: saved.source, offset: 1, head });
      writeFileSync(ckpt, bad);
      await expect(runAgentOnce({ url, stream: 'hd', file })).rejects.toThrow(`checkpoint ${ckpt} is not`);
    }
  });

  it('CLI: strata stream agent STREAM - reads stdin and reports CPU and memory in --json', async () => {
    createStream(dir, ddl('cl'));
    const c = captureIo(`${Array.from({ length: 50 }, (_, i) => line(i)).join('\n')}\n`, {}, dir);
    const cmd = commands.find((x) => x.name === 'stream')!;
    const code = await runCommand(cmd, ['agent', 'cl', '-', '--url', url, '--json'], c.io);
    expect(code).toBe(0);
    const st = JSON.parse(c.stdout());
    expect(st).toMatchObject({ lines: 50, chunks: 1 });
    for (const k of [
      'cpuUserMs',
      'cpuSystemMs',
      'cpuPercent',
      'rssBytes',
      'heapUsedBytes',
      'bufferedBytesPeak',
    ])
      expect(typeof st[k]).toBe('number');
    expect(await allN('cl')).toHaveLength(50);
  });

  it('CLI: a server it cannot reach, or a URL that is none, is named in the error', async () => {
    createStream(dir, ddl('unreach'));
    writeFileSync(join(dir, 'unreach.log'), `${line(1)}\n`);
    const cmd = commands.find((x) => x.name === 'stream')!;
    // a port nothing listens on (the listener is closed first): 'fetch failed' said neither where nor why
    const { createServer } = await import('node:net');
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const c = captureIo('', {}, dir);
    const args = ['agent', 'unreach', 'unreach.log', '--retries', '1', '--json'];
    expect(await runCommand(cmd, [...args, '--url', `http://127.0.0.1:${port}`], c.io)).toBe(1);
    expect(c.stderr()).toMatch(
      new RegExp(
        `GET http://127\\.0\\.0\\.1:${port}/streams/unreach: connect ECONNREFUSED .*\\(2 attempts\\)`,
      ),
    );
    const u = captureIo('', {}, dir);
    expect(await runCommand(cmd, [...args, '--url', '127.0.0.1:7070'], u.io)).toBe(1);
    expect(u.stderr()).toMatch(
      /url '127\.0\.0\.1:7070': expected the ingestion server as http:\/\/HOST:PORT/,
    );
  });

  it('a server that never answers, or stalls mid-answer, or is not an ingestion server: the agent ends with an error naming it (it waited forever)', async () => {
    const { createServer } = await import('node:net');
    const peers = [
      ['silent', () => undefined],
      [
        'stalled',
        (c: import('node:net').Socket) => c.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ddl"'),
      ],
      [
        'not ours',
        (c: import('node:net').Socket) => c.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'),
      ],
    ] as const;
    for (const [kind, answer] of peers) {
      const socks: import('node:net').Socket[] = [];
      const server = createServer((c) => {
        socks.push(c);
        c.on('error', () => undefined);
        c.resume();
        answer(c);
      }).listen(0, '127.0.0.1');
      await once(server, 'listening');
      const at = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      try {
        const t0 = performance.now();
        const run = runAgentStream(new PassThrough().end(`${line(1)}\n`), {
          url: at,
          stream: 'ev',
          retriesMax: 1,
          requestTimeoutMs: 300,
        });
        await expect(run, kind).rejects.toThrow(
          kind === 'not ours'
            ? `GET ${at}/streams/ev: the answer holds no stream definition (is it a Strata ingestion server?)`
            : new RegExp(`GET ${at}/streams/ev: .*(timeout|aborted).*\\(2 attempts\\)`),
        );
        expect(performance.now() - t0, kind).toBeLessThan(10_000);
      } finally {
        for (const c of socks) c.destroy();
        await new Promise((r) => server.close(r));
      }
    }
  });

  it("a request's deadline grows with its body (10 s per MB): a slow uplink's chunk is not cut off and sent again forever", async () => {
    let posts = 0;
    const fetchFn = (async (_url: string, init?: RequestInit) => {
      if (!init?.method) return new Response(JSON.stringify({ ddl: ddl('slowlink') }));
      posts++;
      const body = init.body as Buffer;
      expect(body.length).toBeGreaterThan(40_000);
      // the upload takes 300 ms, past the 200 ms base, inside 200 ms + 40 KB at 100 KB/s
      await new Promise((res, rej) => {
        const t = setTimeout(res, 300);
        init.signal?.addEventListener('abort', () => {
          clearTimeout(t);
          rej(init.signal?.reason);
        });
      });
      return new Response('{}');
    }) as typeof fetch;
    const lines = Array.from({ length: 1500 }, (_, i) => `${line(i)}\n`).join('');
    const st = await runAgentStream(
      new PassThrough().end(lines),
      {
        url: 'http://127.0.0.1:1',
        stream: 'slowlink',
        retriesMax: 1,
        requestTimeoutMs: 200,
        compress: false,
        chunkBytes: 1 << 20,
      },
      fetchFn,
    );
    expect(st.retries).toBe(0);
    expect(posts).toBe(1);
  });

  it('CLI: strata stream serve on a port in use says so, exit 1 (an unhandled error event ended it)', async () => {
    const c = captureIo('', {}, dir);
    const rc = await runCommand(
      commands.find((x) => x.name === 'stream')!,
      ['serve', '--port', String(srv.port), '--data', dir],
      c.io,
    );
    expect(rc).toBe(1);
    expect(c.stderr()).toBe(
      `strata stream serve: listen EADDRINUSE: address already in use 127.0.0.1:${srv.port}\n`,
    );
  });

  it('CLI: strata stream serve on a --data it cannot make or write says so before serving, exit 1', async () => {
    // it came up and answered every request 404 (a file where the directory should be; a path under /proc)
    writeFileSync(join(dir, 'plain-file'), 'x');
    for (const data of [join(dir, 'plain-file', 'sub'), '/proc/strata-no-such/data']) {
      const c = captureIo('', {}, dir);
      const rc = await runCommand(
        commands.find((x) => x.name === 'stream')!,
        ['serve', '--port', '0', '--data', data],
        c.io,
      );
      expect(rc).toBe(1);
      expect(c.stderr()).toMatch(new RegExp(`^strata stream serve: --data ${data}: `));
    }
  });

  it('the server refuses a leaf that does not match the rows (verifyLeaves)', async () => {
    createStream(dir, ddl('bad'));
    const other = `CREATE STREAM bad SOURCES ('x') FORMAT logfmt COLUMNS (n INT, user STRING, msg TEXT) INDEX (msg)`;
    const input = new PassThrough();
    const run = runAgentStream(input, { url, stream: 'bad', ddl: other });
    input.end(`${line(1)}\n`);
    await expect(run).rejects.toThrow(/shipped leaf/);
    const post = (enc: string, body: Buffer) =>
      fetch(`${url}/streams/bad/chunks?source=s&from=0&to=3`, {
        method: 'POST',
        body,
        headers: { 'idempotency-key': 'x', 'content-encoding': enc },
      });
    expect((await post('br', Buffer.from('a\nb'))).status).toBe(415);
    const r = await post('deflate', Buffer.from('not deflate'));
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(/does not inflate/);
  });
});
