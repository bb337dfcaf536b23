import { spawnSync } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../src/backends/s3.js';
import { etagOf, PreconditionFailedError } from '../src/index.js';
import { objectStoreConformance } from './conformance.js';
import { type Rgw, rgwAvailable, startRgw } from './helpers/rgw.js';

const creds = { accessKeyId: 'testkey', secretAccessKey: 'testsecret', region: 'us-east-1' };
let rgw: Rgw | undefined;
let n = 0;

describe.runIf(rgwAvailable())('s3: backend against a real Ceph RGW on 127.0.0.1', () => {
  beforeAll(async () => {
    rgw = await startRgw();
  }, 300_000);
  afterAll(() => rgw?.stop(), 90_000);

  const make = async () =>
    new S3Store({ ...creds, bucket: rgw!.bucket, prefix: `t${Date.now()}-${n++}`, endpoint: rgw!.endpoint });
  // RGW 16 deletes whatever the If-Match (next test): the store emulates conditional deletes, not atomically
  describe('conformance', () => objectStoreConformance(make, { largeBytes: 20 << 20, atomicDeletes: false }));

  it('finds out that this RGW ignores If-Match on DELETE, and then checks the etag itself', async () => {
    const s = await make();
    expect(await s.honoursDeleteIfMatch()).toBe(false);
    expect((await s.list('')).objects).toEqual([]); // the probe object is gone
    const e = await s.put('c', Buffer.from('a'));
    await expect(s.delete('c', { ifMatch: '0123456789abcdef0123456789abcdef' })).rejects.toThrow(/etag is/);
    expect(await s.head('c')).toMatchObject({ etag: e });
    await s.close();
  });

  it('If-Match with a quoted etag works (RGW matches only unquoted: the backend strips quotes)', async () => {
    const s = await make();
    const e = await s.put('q', Buffer.from('a'));
    await s.put('q', Buffer.from('b'), { ifMatch: `"${e}"` });
    expect(Buffer.from(await s.get('q')).toString()).toBe('b');
    await s.close();
  });

  it('loses no acknowledged write through an endpoint that fails or stalls some requests', async () => {
    // A fault-injecting proxy: answers 503 to 20% of requests and never answers 5% (the client times out).
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const target = new URL(rgw!.endpoint);
    const proxy: Server = createServer((req, res) => {
      const r = rand();
      if (r < 0.05) return; // stall
      if (r < 0.25) {
        req.resume();
        res.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code></Error>');
        return;
      }
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (ur) => {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as AddressInfo).port;
    const prefix = `faults-${Date.now()}`;
    const flaky = new S3Store(
      { ...creds, bucket: rgw!.bucket, prefix, endpoint: `http://127.0.0.1:${port}` },
      { requestTimeoutMs: 1500, attemptsMax: 6 },
    );
    const acked: number[] = [];
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        try {
          await flaky.put(`k${i}`, Buffer.from(`value ${i}`));
          acked.push(i);
        } catch {
          // not acknowledged: allowed to be lost
        }
      }),
    );
    expect(acked.length).toBeGreaterThan(40);
    // multipart uploads (5 parts, 4 in flight) through the same faults: acknowledged ones are whole
    const large = (i: number) => Buffer.alloc(36 << 20, i + 1);
    const ackedLarge: number[] = [];
    await Promise.all(
      [0, 1].map(async (i) => {
        try {
          await flaky.put(`large${i}`, large(i));
          ackedLarge.push(i);
        } catch {
          // not acknowledged
        }
      }),
    );
    const direct = new S3Store({ ...creds, bucket: rgw!.bucket, prefix, endpoint: rgw!.endpoint });
    for (const i of acked) expect(Buffer.from(await direct.get(`k${i}`)).toString()).toBe(`value ${i}`);
    for (const i of ackedLarge)
      expect(Buffer.from(await direct.get(`large${i}`)).equals(large(i))).toBe(true);
    await flaky.close();
    await direct.close();
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
  }, 120_000);
});

describe('s3: multipart upload failure (no server: requests answered in the test)', () => {
  it('a failed part stops the workers taking parts, and the upload is aborted only after every part settled', async () => {
    const s = new S3Store({ ...creds, bucket: 'b', prefix: 'p', endpoint: 'http://127.0.0.1:9' });
    const events: string[] = [];
    let inFlight = 0;
    const failure = new Error('part 2 failed');
    const named = (c: object) => c.constructor.name.replace(/Command$/, '');
    (s as unknown as { send: (c: { input: { PartNumber?: number } }) => Promise<unknown> }).send = async (
      c,
    ) => {
      const name = named(c);
      if (name === 'CreateMultipartUpload') return { UploadId: 'u' };
      if (name !== 'UploadPart') {
        events.push(name);
        return {};
      }
      const part = c.input.PartNumber!;
      events.push(`start ${part}`);
      inFlight++;
      await new Promise((r) => setTimeout(r, part === 2 ? 5 : 40));
      inFlight--;
      events.push(`end ${part}`);
      if (part === 2) throw failure;
      return { ETag: `e${part}` };
    };
    let inFlightAtAbort = -1;
    s.client.send = (async (c: object) => {
      events.push(named(c));
      inFlightAtAbort = inFlight;
      return {};
    }) as typeof s.client.send;
    // 6 parts, 4 in flight: part 2 fails while 1, 3 and 4 are still out
    await expect(s.put('big', Buffer.alloc(41 << 20))).rejects.toBe(failure);
    expect(inFlightAtAbort).toBe(0);
    expect(events.at(-1)).toBe('AbortMultipartUpload');
    expect(events).not.toContain('CompleteMultipartUpload');
    // no part started after the failure
    expect(events.filter((e) => e.startsWith('start')).sort()).toEqual([
      'start 1',
      'start 2',
      'start 3',
      'start 4',
    ]);
    s.client.destroy();
  });
});

describe('s3: conditional deletes on a server that honours If-Match (answered in the test)', () => {
  /** A bucket of etags behind `client.send`, as S3 answers; `lose` applies the next delete and loses its answer. */
  function fakeServer(s: S3Store) {
    const objects = new Map<string, string>();
    const calls: string[] = [];
    const fail = (code: number) =>
      Object.assign(new Error(`status ${code}`), { $metadata: { httpStatusCode: code } });
    const state = { lose: false, objects, calls, afterHead: undefined as (() => void) | undefined };
    s.client.send = (async (c: { constructor: { name: string }; input: Record<string, string> }) => {
      const name = c.constructor.name.replace(/Command$/, '');
      const { Key, IfMatch } = c.input;
      calls.push(`${name} ${Key}${IfMatch ? ` if ${IfMatch}` : ''}`);
      if (name === 'PutObject') {
        objects.set(Key!, `"${etagOf(Buffer.from(String(c.input.Body)))}"`);
        return { ETag: objects.get(Key!) };
      }
      if (name === 'HeadObject') {
        if (!objects.has(Key!)) throw fail(404);
        const r = { ETag: objects.get(Key!), ContentLength: 1, LastModified: new Date() };
        state.afterHead?.();
        state.afterHead = undefined;
        return r;
      }
      if (name === 'DeleteObject') {
        const now = objects.get(Key!);
        if (IfMatch !== undefined && now === undefined) throw fail(404);
        if (IfMatch !== undefined && now !== `"${IfMatch}"`) throw fail(412);
        objects.delete(Key!);
        if (state.lose) {
          state.lose = false;
          throw fail(503);
        }
        return {};
      }
      throw new Error(`unexpected ${name}`);
    }) as typeof s.client.send;
    return state;
  }

  it('sends If-Match, fails on another etag, and resolves a retry whose first attempt deleted the object', async () => {
    const s = new S3Store({ ...creds, bucket: 'b', prefix: 'p', endpoint: 'http://127.0.0.1:9' });
    const server = fakeServer(s);
    expect(await s.honoursDeleteIfMatch()).toBe(true);
    expect(server.objects.size).toBe(0); // the probe's object is gone
    const e = await s.put('k', Buffer.from('a'));
    // rewritten by another client after the store's head: the server's If-Match stops the delete
    server.afterHead = () => server.objects.set('p/k', '"rewritten"');
    await expect(s.delete('k', { ifMatch: e })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect(server.calls.at(-1)).toBe(`DeleteObject p/k if ${e}`);
    expect(server.objects.get('p/k')).toBe('"rewritten"');
    const e2 = await s.put('k', Buffer.from('a'));
    server.lose = true; // applied, but its answer is a 503: the retry's 404 means it is gone, as asked
    await s.delete('k', { ifMatch: `"${e2}"` });
    expect(server.objects.has('p/k')).toBe(false);
    await expect(s.delete('k', { ifMatch: e2 })).rejects.toBeInstanceOf(PreconditionFailedError);
    s.client.destroy();
  });
});

describe('s3: errors the store never answered', () => {
  it('name the store, and say where credentials come from', async () => {
    const saved = { ...process.env };
    // no credentials anywhere, and no instance-metadata lookup (it is not on loopback)
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_PROFILE', 'AWS_SESSION_TOKEN'])
      delete process.env[k];
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/strata-credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/strata-config';
    try {
      const anon = new S3Store(
        { region: 'us-east-1', bucket: 'b', prefix: 'p', endpoint: 'http://127.0.0.1:1' },
        { attemptsMax: 1 },
      );
      await expect(anon.get('k')).rejects.toThrow(
        /^s3:\/\/b\/p\?endpoint=http:\/\/127\.0\.0\.1:1: no credentials: give accessKeyId and secretAccessKey/,
      );
      await anon.close();
      const refused = new S3Store(
        { ...creds, bucket: 'b', prefix: 'p', endpoint: 'http://127.0.0.1:1' },
        { attemptsMax: 1 },
      );
      await expect(refused.put('k', Buffer.from('x'))).rejects.toThrow(
        /^s3:\/\/b\/p\?endpoint=.*ECONNREFUSED/,
      );
      await refused.close();
    } finally {
      process.env = saved;
    }
  });
});

describe('s3: the AWS SDK is loaded only for s3:// stores', () => {
  // It made every import of the package (the CLI, an agent, a search) 180 ms slower and 10 MiB larger.
  const sdkModulesAfter = (entry: string, open?: string): number => {
    const script = `
      import { createRequire } from 'node:module';
      const m = await import(${JSON.stringify(entry)});
      ${open ? `await m.openStore(${JSON.stringify(open)});` : ''}
      const req = createRequire(import.meta.url);
      console.log(Object.keys(req.cache).filter((k) => k.includes('@aws-sdk')).length);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return Number(r.stdout.trim());
  };
  const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));

  it('not by importing the package, but by opening an s3:// store', () => {
    expect(sdkModulesAfter(index)).toBe(0);
    expect(sdkModulesAfter(index, 's3://logs/p?endpoint=http://127.0.0.1:9')).toBeGreaterThan(0);
  });
});
