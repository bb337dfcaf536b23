import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { commands, hash64, hash128 } from '../src/index.js';

const cmd = commands[0]!;
const dir = mkdtempSync(join(tmpdir(), 'hh-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const key = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('strata hash', () => {
  it('prints sha256sum-style lines and verifies them with --check', async () => {
    const data = Buffer.from('hello highwayhash\n'.repeat(1000));
    writeFileSync(join(dir, 'a.txt'), data);
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', 'a.txt'], c.io)).toBe(0);
    const words = [...hash128(key, data)].map((w) => w.toString(16).padStart(16, '0')).join('');
    expect(c.stdout()).toBe(`${words}  a.txt\n`);
    writeFileSync(join(dir, 'list'), c.stdout());
    const ok = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', '--check', 'list'], ok.io)).toBe(0);
    expect(ok.stdout()).toBe('a.txt: OK\n');
    writeFileSync(join(dir, 'a.txt'), 'changed');
    const bad = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '128', '--check', 'list'], bad.io)).toBe(1);
    expect(bad.stdout()).toContain('FAILED');
  });

  it('hashes stdin with a custom key and rejects bad flags with exit 2', async () => {
    const c = captureIo('abc');
    const k = 'ff'.repeat(32);
    expect(await runCommand(cmd, ['--key', k], c.io)).toBe(0);
    expect(c.stdout()).toBe(
      `${hash64(new Uint8Array(32).fill(255), Buffer.from('abc')).toString(16).padStart(16, '0')}  -\n`,
    );
    const b = captureIo();
    expect(await runCommand(cmd, ['--bits', '32'], b.io)).toBe(2);
    expect(b.stderr()).toMatch(/--bits/);
    const k2 = captureIo();
    expect(await runCommand(cmd, ['--key', 'abc'], k2.io)).toBe(2);
    const m = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['missing.bin'], m.io)).toBe(1);
    expect(m.stderr()).toMatch(/missing\.bin/);
  });

  it('--check reads sha256sum listings: CRLF, upper-case hex, the binary-mode star, blank lines', async () => {
    writeFileSync(join(dir, 'b.bin'), 'bee');
    const hex = hash64(key, Buffer.from('bee')).toString(16).padStart(16, '0');
    writeFileSync(join(dir, 'crlf'), `\r\n${hex.toUpperCase()}  b.bin\r\n\n${hex} *b.bin\r\n`);
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'crlf'], c.io)).toBe(0);
    expect(c.stdout()).toBe('b.bin: OK\nb.bin: OK\n');
  });

  it('--check of a listing with no checksum lines fails: it verified nothing (it exited 0)', async () => {
    for (const [name, text] of [
      ['none', ''],
      ['blank', '\n\r\n  \n'],
    ]) {
      writeFileSync(join(dir, name!), text!);
      const c = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--check', name!], c.io)).toBe(1);
      expect(c.stdout()).toBe('');
      expect(c.stderr()).toContain(`--check: ${name} lists no checksums`);
    }
  });

  it('names with a backslash, LF or CR are escaped as sha256sum escapes them, and --check reads them back (a LF broke the listing)', async () => {
    const names = ['new\nline', 'back\\slash', 'cr\rname', 'plain name'];
    for (const [i, n] of names.entries()) writeFileSync(join(dir, n), `file ${i}`);
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, names, c.io)).toBe(0);
    const hex = (i: number) =>
      hash64(key, Buffer.from(`file ${i}`))
        .toString(16)
        .padStart(16, '0');
    // GNU coreutils' form (sha256sum of 'new\nline' prints '\\<hex>  new\\nline')
    expect(c.stdout()).toBe(
      `\\${hex(0)}  new\\nline\n\\${hex(1)}  back\\\\slash\n\\${hex(2)}  cr\\rname\n${hex(3)}  plain name\n`,
    );
    writeFileSync(join(dir, 'escaped'), c.stdout());
    const ok = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'escaped'], ok.io)).toBe(0);
    expect(ok.stdout()).toBe('\\new\\nline: OK\n\\back\\\\slash: OK\n\\cr\\rname: OK\nplain name: OK\n');
    writeFileSync(join(dir, 'new\nline'), 'changed');
    const bad = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'escaped'], bad.io)).toBe(1);
    expect(bad.stdout()).toContain('\\new\\nline: FAILED\n');
    // an escape that is none of the three is a malformed line
    writeFileSync(join(dir, 'badesc'), `\\${hex(3)}  a\\qb\n`);
    const m = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'badesc'], m.io)).toBe(1);
    expect(m.stderr()).toContain('badesc:1: expected "HEX  NAME"');
  });

  it("--check without --bits takes each line's size from its width; with --bits it holds every line to it", async () => {
    writeFileSync(join(dir, 'c.bin'), 'sea');
    const words = (ws: Iterable<bigint>) => [...ws].map((w) => w.toString(16).padStart(16, '0')).join('');
    const lines = [];
    for (const bits of ['64', '128', '256']) {
      const c = captureIo('', {}, dir);
      expect(await runCommand(cmd, ['--bits', bits, 'c.bin'], c.io)).toBe(0);
      lines.push(c.stdout());
    }
    expect(lines[1]).toBe(`${words(hash128(key, Buffer.from('sea')))}  c.bin\n`);
    writeFileSync(join(dir, 'mixed'), lines.join(''));
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'mixed'], c.io)).toBe(0);
    expect(c.stdout()).toBe('c.bin: OK\n'.repeat(3));
    const held = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--bits', '64', '--check', 'mixed'], held.io)).toBe(1);
    expect(held.stderr()).toContain('mixed:2: expected "HEX  NAME" with 16 hex digits');
    const extra = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'mixed', 'c.bin'], extra.io)).toBe(2);
    expect(extra.stderr()).toMatch(/got 'c\.bin' too/);
  });

  it('--check refuses a malformed listing before reading any file, naming the line (blank lines counted)', async () => {
    const hex = hash64(key, Buffer.from('bee')).toString(16).padStart(16, '0');
    writeFileSync(join(dir, 'broken'), `${hex}  b.bin\n\n\n${hex.slice(1)}  b.bin\n`);
    const c = captureIo('', {}, dir);
    expect(await runCommand(cmd, ['--check', 'broken'], c.io)).toBe(1);
    expect(c.stdout()).toBe(''); // the good first line is not reported OK from a refused listing
    expect(c.stderr()).toContain(
      `broken:4: expected "HEX  NAME" with 16, 32 or 64 hex digits, got '${hex.slice(1)}  b.bin'`,
    );
  });

  it('--check on any text: exit 0 or 1, a malformed line named by its number, never a crash (fuzz)', async () => {
    const hex = hash64(key, Buffer.from('bee')).toString(16).padStart(16, '0');
    const line = fc.oneof(
      fc.constant(`${hex}  b.bin`),
      fc.constant(`${hex}  missing.bin`),
      fc.constant(''),
      fc.string({ maxLength: 30 }),
      fc.stringMatching(/^[0-9a-f]{10,20} [ *][a-z.]{1,8}$/),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 6 }), fc.boolean(), async (lines, crlf) => {
        writeFileSync(join(dir, 'fuzz'), lines.join(crlf ? '\r\n' : '\n'));
        const c = captureIo('', {}, dir);
        const code = await runCommand(cmd, ['--check', 'fuzz'], c.io);
        expect([0, 1]).toContain(code);
        const badAt = lines.findIndex(
          (l) => l.trim() !== '' && !/^([0-9a-fA-F]{16}|[0-9a-fA-F]{32}|[0-9a-fA-F]{64}) [ *].+$/.test(l),
        );
        if (badAt >= 0) {
          expect(c.stderr()).toContain(`fuzz:${badAt + 1}: expected`);
          expect(c.stdout()).toBe('');
        } else
          expect(code).toBe(
            lines.every((l) => l.trim() === '') || // nothing listed: nothing verified
              lines.some((l) => l.endsWith('missing.bin') || (l.trim() !== '' && !l.startsWith(hex)))
              ? 1
              : 0,
          );
      }),
      { numRuns: 200 },
    );
  });
});
