import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs, makeDirsSync } from '../src/index.js';

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
