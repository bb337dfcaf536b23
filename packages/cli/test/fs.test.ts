import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs, makeDirsSync, openInput, openOutput, writeFileDurableSync } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'strata-cli-fs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.each([
  ['makeDirs', makeDirs],
  ['makeDirsSync', makeDirsSync],
] as const)('%s', (name, make) => {
  it('creates the missing parents and returns the first directory it created', async () => {
    const top = join(root, name);
    expect(await make(join(top, 'b', 'c'))).toBe(top);
    expect(statSync(join(top, 'b', 'c')).isDirectory()).toBe(true);
    expect(await make(join(top, 'b', 'c'))).toBeUndefined();
    expect(await make(join(top, 'b', 'd'))).toBe(join(top, 'b', 'd'));
  });

  it('refuses a path through a file with ENOTDIR naming it', async () => {
    const f = join(root, `${name}-file`);
    writeFileSync(f, 'x');
    for (const path of [join(f, 'x', 'y'), f]) {
      const e = await (async () => make(path))().catch((x: NodeJS.ErrnoException) => x);
      expect(e).toMatchObject({ code: 'ENOTDIR' });
      expect((e as Error).message).toContain(f);
    }
  });

  // Node's own { recursive: true } spins forever here (every mkdir under /proc answers ENOENT)
  it.skipIf(!existsSync('/proc/self'))(
    'fails, and does not hang, where a parent cannot hold children',
    async () => {
      await expect(async () => make('/proc/strata-no-such/dir')).rejects.toMatchObject({ code: 'ENOENT' });
    },
  );
});

describe('openOutput', () => {
  it('writes the file; a path that cannot be opened fails at once naming the flag', async () => {
    const ok = openOutput('--out', join(root, 'out.txt'));
    ok.stream.write('a\n');
    ok.stream.write('b\n');
    await ok.close();
    expect(readFileSync(join(root, 'out.txt'), 'utf8')).toBe('a\nb\n');
    const missing = join(root, 'no-dir', 'out.txt');
    expect(() => openOutput('--out', missing)).toThrow(`--out ${missing}: ENOENT: no such file or directory`);
    expect(() => openOutput('--alerts', root)).toThrow(`--alerts ${root}: EISDIR`);
  });

  it('a write that fails is the rejection of close, not an unhandled error event', async () => {
    const full = openOutput('--alerts', '/dev/full');
    for (let i = 0; i < 100; i++) full.stream.write('x'.repeat(1000));
    await expect(full.close()).rejects.toThrow(/^--alerts \/dev\/full: ENOSPC/);
  });
});

describe('openInput', () => {
  it('reads the file; one it cannot open, or a directory, is an error naming it at once', async () => {
    writeFileSync(join(root, 'in.txt'), 'abc');
    const { stream, size } = openInput(join(root, 'in.txt'), 'in.txt');
    expect(size).toBe(3);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('abc');
    expect(() => openInput(join(root, 'none.txt'), 'none.txt')).toThrow(
      'cannot read none.txt: ENOENT: no such file or directory',
    );
    expect(() => openInput(root, 'ROOT')).toThrow('cannot read ROOT: it is a directory');
  });
});

describe('writeFileDurableSync', () => {
  it('writes and replaces a file whole, leaving no file of its own beside it', () => {
    const dir = join(root, 'durable');
    makeDirsSync(dir);
    const path = join(dir, 'stream.ddl');
    writeFileDurableSync(path, 'CREATE STREAM a');
    expect(readFileSync(path, 'utf8')).toBe('CREATE STREAM a');
    writeFileDurableSync(path, new TextEncoder().encode('CREATE STREAM b'));
    expect(readFileSync(path, 'utf8')).toBe('CREATE STREAM b');
    expect(readdirSync(dir)).toEqual(['stream.ddl']);
  });

  it('fails naming the path when it cannot write there, and leaves nothing behind', () => {
    const dir = join(root, 'durable-fail');
    makeDirsSync(join(dir, 'taken'));
    // a directory where the file should go: the rename fails
    expect(() => writeFileDurableSync(join(dir, 'taken'), 'x')).toThrow(/taken/);
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(() => writeFileDurableSync(join(dir, 'missing', 'f'), 'x')).toThrow(/ENOENT.*missing/);
  });
});
