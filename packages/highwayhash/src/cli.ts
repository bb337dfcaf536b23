import { createReadStream, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  type Io,
  Progress,
  parseFlags,
  UsageError,
} from '@strata/cli';
import { createHasher, hash64, hash64Batch, implementation } from './hash.js';

/** The default key of `strata hash`: bytes 00 01 .. 1f (the reference test key), so listings are reproducible. */
const defaultKeyHex = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, '0')).join('');

function parseKey(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    throw new UsageError(`--key: expected 64 hex digits (32 bytes), got ${hex.length} characters`);
  return Uint8Array.from(hex.match(/../g)!.map((h) => Number.parseInt(h, 16)));
}

function hex(words: bigint[]): string {
  return words.map((w) => w.toString(16).padStart(16, '0')).join('');
}

async function digestStream(
  key: Uint8Array,
  bits: number,
  name: string,
  io: Io,
  quiet: boolean,
): Promise<string> {
  const h = createHasher(key);
  const total = name === '-' ? 0 : statSync(resolve(io.cwd, name)).size;
  const progress = new Progress(io.stderr, { total, label: name, quiet });
  const input = name === '-' ? io.stdin : createReadStream(resolve(io.cwd, name), { highWaterMark: 1 << 20 });
  for await (const chunk of input) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    h.update(b);
    progress.tick(b.length);
  }
  progress.finish();
  if (bits === 64) return hex([h.digest64()]);
  return hex([...(bits === 128 ? h.digest128() : h.digest256())]);
}

const hashCmd: Command = {
  name: 'hash',
  summary: 'HighwayHash files like sha256sum (64/128/256 bits, keyed); --check verifies a listing',
  help: `Prints HighwayHash digests of files (or stdin), one "HEX  NAME" line each, like sha256sum.
HEX is the hash's u64 words in the reference implementation's order, each as 16 hex digits.

Usage: strata hash [--bits 64|128|256] [--key HEX64] [FILE|-]...
       strata hash --check LISTING [--bits ...] [--key ...]

  --bits N        64 (default), 128 or 256
  --key HEX       the 256-bit key as 64 hex digits (default: 000102...1f)
  --check FILE    verify a listing made by this command (each line's width gives its --bits unless
                  --bits is given); exit 1 on any mismatch
  --json          one JSON object per file
  --quiet         no progress bar; with --check, print only failures

Example:
  strata hash --bits 128 README.md package.json`,
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, {
      bits: { type: 'string' },
      key: { type: 'string' },
      check: { type: 'string' },
    });
    const bits = Number(values.bits ?? '64');
    if (bits !== 64 && bits !== 128 && bits !== 256)
      throw new UsageError(`--bits: expected 64, 128 or 256, got '${values.bits}'`);
    const key = parseKey(values.key ?? defaultKeyHex);
    const quiet = values.quiet === true;
    if (values.check !== undefined) {
      let text: string;
      try {
        text = readFileSync(resolve(io.cwd, values.check), 'utf8');
      } catch (e) {
        throw new CliError(`--check: cannot read ${values.check}: ${(e as Error).message}`);
      }
      // the whole listing is checked before any file is read: a malformed line names its line number
      // (blank lines counted), and nothing is reported OK from a listing that is refused
      if (positionals.length > 0)
        throw new UsageError(`--check reads the files its listing names, got '${positionals[0]}' too`);
      // without --bits, each line's width says its size (16, 32 or 64 hex digits), as b2sum reads them
      const widths = values.bits === undefined ? [16, 32, 64] : [bits / 4];
      const widthsText = values.bits === undefined ? '16, 32 or 64' : String(bits / 4);
      const entries: { hex: string; name: string }[] = [];
      for (const [i, raw] of text.split('\n').entries()) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line.trim() === '') continue;
        // sha256sum's form: HEX, a space, ' ' or '*' (text or binary mode: the same here), NAME; a leading
        // backslash says NAME is escaped (see escapeName)
        const escaped = line.startsWith('\\');
        const m = /^([0-9a-fA-F]+) [ *](.+)$/.exec(escaped ? line.slice(1) : line);
        const name = m && (escaped ? unescapeName(m[2]!) : m[2]!);
        if (!m || !name || !widths.includes(m[1]!.length))
          throw new CliError(
            `${values.check}:${i + 1}: expected "HEX  NAME" with ${widthsText} hex digits, got '${line.slice(0, 60)}'`,
          );
        entries.push({ hex: m[1]!.toLowerCase(), name });
      }
      // an empty listing verifies nothing: not a success (it exited 0; sha256sum says so and exits 1)
      if (entries.length === 0) throw new CliError(`--check: ${values.check} lists no checksums`);
      let bad = 0;
      for (const { hex, name } of entries) {
        let ok = false;
        try {
          ok = (await digestStream(key, hex.length * 4, name, io, true)) === hex;
        } catch (e) {
          io.stderr.write(`strata hash: ${name}: ${(e as Error).message}\n`);
        }
        if (!ok) bad++;
        if (!ok || !quiet) io.stdout.write(`${listed('', name)}: ${ok ? 'OK' : 'FAILED'}\n`);
      }
      if (bad) io.stderr.write(`strata hash: ${bad} of ${entries.length} computed checksums did NOT match\n`);
      return bad ? 1 : 0;
    }
    const files = positionals.length ? positionals : ['-'];
    let status = 0;
    for (const f of files) {
      try {
        const d = await digestStream(key, bits, f, io, quiet);
        io.stdout.write(
          values.json ? `${JSON.stringify({ file: f, bits, hash: d })}\n` : `${listed(`${d}  `, f)}\n`,
        );
      } catch (e) {
        io.stderr.write(`strata hash: ${f}: ${(e as Error).message}\n`);
        status = 1;
      }
    }
    return status;
  },
};

/**
 * A listing's line for `name` after `prefix`, as GNU coreutils' sha256sum writes it: a name holding a
 * backslash, LF or CR is escaped (a backslash doubled, LF as \n, CR as \r) and its line starts with a
 * backslash (a LF in a name broke the listing into two lines, neither of which --check could read).
 */
function listed(prefix: string, name: string): string {
  return /[\\\n\r]/.test(name) ? `\\${prefix}${escapeName(name)}` : `${prefix}${name}`;
}

function escapeName(name: string): string {
  return name.replace(/[\\\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : '\\r'));
}

/** `escapeName` undone; undefined for a backslash before anything else (a malformed line). */
function unescapeName(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') out += c;
    else {
      const e = text[++i];
      if (e === '\\') out += '\\';
      else if (e === 'n') out += '\n';
      else if (e === 'r') out += '\r';
      else return undefined;
    }
  }
  return out;
}

export const commands: Command[] = [hashCmd];

export const demos: DemoStep[] = [
  {
    name: 'highwayhash',
    async run(io) {
      const key = new Uint8Array(32).map((_, i) => i);
      const n = 1_000_000;
      const buf = new Uint8Array(n * 16);
      for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
      const offs = Uint32Array.from({ length: n }, (_, i) => i * 16);
      const lens = new Uint32Array(n).fill(16);
      const out = new BigUint64Array(n);
      // V8 runs WebAssembly first as its baseline compiler made it and swaps in the optimized code once it
      // is built (in the background, for later calls): the first calls of a process run at about half speed
      const timings = (calls: number, f: () => void) =>
        Array.from({ length: calls }, () => {
          const t0 = performance.now();
          f();
          return performance.now() - t0;
        });
      const batchTimes = timings(3, () => hash64Batch(key, buf, offs, lens, out));
      const ms = Math.min(...batchTimes.slice(1));
      const big = new Uint8Array(16 << 20);
      let h = 0n;
      const times = timings(4, () => {
        h = hash64(key, big);
      });
      const gbs = (t: number) => `${((16 << 20) / t / 1e6).toFixed(2)} GB/s`;
      const best = Math.min(...times.slice(1));
      io.stdout.write(
        `engine ${implementation()}: hashed ${n.toLocaleString('en')} 16-byte keys in ${ms.toFixed(0)} ms ` +
          `(${(n / ms / 1000).toFixed(1)} M keys/s; the first time ${batchTimes[0]!.toFixed(0)} ms); 16 MiB of zeros in ${best.toFixed(1)} ms (${gbs(best)}; ` +
          `the process's first call ${times[0]!.toFixed(1)} ms, ${gbs(times[0]!)}) -> ${h.toString(16).padStart(16, '0')}\n`,
      );
    },
  },
];
