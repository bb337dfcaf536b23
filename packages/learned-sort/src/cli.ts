import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import {
  CliError,
  type Command,
  type DemoStep,
  openInput,
  openOutput,
  Progress,
  parseFlags,
  UsageError,
} from '@strata/cli';
import { learnedSort, type SortableArray } from './sort.js';

const types = {
  f64: Float64Array,
  f32: Float32Array,
  i32: Int32Array,
  u32: Uint32Array,
  i64: BigInt64Array,
  u64: BigUint64Array,
} as const;
type TypeName = keyof typeof types;

/** Largest input `strata sort` holds in memory (it sorts in memory; input and output are streamed). */
const inputBytesMax = 8 * 2 ** 30;

async function readBinary(input: Readable, t: TypeName, progress?: Progress): Promise<SortableArray> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of input) {
    const b = c as Buffer;
    n += b.length;
    if (n > inputBytesMax) throw new CliError(`input is larger than ${inputBytesMax} bytes`);
    chunks.push(b);
    progress?.tick(b.length);
  }
  const size = types[t].BYTES_PER_ELEMENT;
  if (n % size !== 0)
    throw new CliError(
      `input is ${n} bytes, not a multiple of ${size} (${t}): the last element is cut at byte ${n - (n % size)}`,
    );
  const buf = Buffer.concat(chunks, n);
  const out = new types[t](n / size);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** Longest line `--text` reads: a number's text, with room for long decimal fractions. */
const textLineMax = 4096;

/** Newline-separated numbers, parsed as they arrive (a number's 4-8 bytes are kept, not its text). */
async function readText(input: Readable, t: TypeName, progress?: Progress): Promise<SortableArray> {
  let out = new types[t](1024);
  let k = 0;
  const big = t === 'i64' || t === 'u64';
  const [lo, hi] = t === 'i64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
  let line = 0;
  const take = (v: string) => {
    line++;
    const s = v.trim();
    if (s === '') return;
    if (k === out.length) {
      const grown = new types[t](2 * out.length);
      grown.set(out as never);
      out = grown;
    }
    // an integer type takes decimal digits with an optional sign, whatever its width (i32 and u32 took
    // what Number() reads, 0x10 and 1e3 among it, where i64 and u64 refused them, and +5)
    if ((big || t === 'i32' || t === 'u32') && !/^[+-]?\d+$/.test(s))
      throw new CliError(`line ${line}: '${s.slice(0, 40)}' is not an integer`);
    if (big) {
      const x = BigInt(s);
      if (x < lo || x > hi) throw new CliError(`line ${line}: ${s.slice(0, 40)} is out of range for ${t}`);
      (out as BigInt64Array)[k++] = x;
    } else {
      const x = Number(s);
      if (Number.isNaN(x) && s !== 'NaN')
        throw new CliError(`line ${line}: '${s.slice(0, 40)}' is not a number`);
      // a typed array would wrap an integer or round a float to infinity without a word; so would the
      // parse of a float literal past f64's range (1e400), which is not the literal Infinity
      const bad =
        t === 'i32'
          ? x < -(2 ** 31) || x >= 2 ** 31
          : t === 'u32'
            ? x < 0 || x >= 2 ** 32
            : (!Number.isFinite(x) && !Number.isNaN(x) && !/^[+-]?Infinity$/.test(s)) ||
              (t === 'f32' && Number.isFinite(x) && !Number.isFinite(Math.fround(x)));
      if (bad) throw new CliError(`line ${line}: ${s.slice(0, 40)} is out of range for ${t}`);
      (out as Float64Array)[k++] = x;
    }
  };
  // a character split across two chunks is decoded whole
  const utf8 = new StringDecoder('utf8');
  let rest = '';
  let n = 0;
  for await (const c of input) {
    const b = c as Buffer;
    n += b.length;
    if (n > inputBytesMax) throw new CliError(`input is larger than ${inputBytesMax} bytes`);
    progress?.tick(b.length);
    const parts = (rest + utf8.write(b)).split('\n');
    rest = parts.pop()!;
    for (const p of parts) take(p);
    if (rest.length > textLineMax)
      throw new CliError(
        `line ${line + 1}: longer than ${textLineMax} characters ('${rest.slice(0, 40)}...')`,
      );
  }
  rest += utf8.end();
  if (rest !== '') take(rest);
  return out.subarray(0, k) as SortableArray;
}

/** The sorted keys, little-endian binary or one per line. */
function writeOut(out: Writable, a: SortableArray, text: boolean): void {
  if (!text) {
    out.write(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    return;
  }
  const step = 65536;
  for (let i = 0; i < a.length; i += step) {
    const parts: string[] = [];
    // String(-0) is '0': the sign of a float zero is written out, so the text reads back the same keys
    for (let j = i; j < Math.min(a.length, i + step); j++)
      parts.push(Object.is(a[j], -0) ? '-0' : String(a[j]));
    out.write(`${parts.join('\n')}\n`);
  }
}

const sortCmd: Command = {
  name: 'sort',
  summary: 'sort a file of numbers (binary little-endian or text) with Learned Sort',
  help: `Sorts a file of little-endian binary numbers (or newline-separated numbers with --text) with
Learned Sort, and reports keys/s on stderr.

Usage: strata sort --type f64|f32|i32|u32|i64|u64 [--in FILE | FILE] [--out FILE] [--text] [--quiet]

  --type T     element type (default f64)
  --in FILE    input (default, or -: stdin; the file may also be given without --in)
  --out FILE   output (default stdout)
  --text       numbers as text, one per line
  --quiet      no progress bar, and no keys/s line on stderr

Example:
  printf '3\\n1\\n2\\n' | strata sort --type i32 --text`,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        type: { type: 'string' },
        in: { type: 'string' },
        out: { type: 'string' },
        text: { type: 'boolean' },
      },
      1,
    );
    const t = (values.type ?? 'f64') as TypeName;
    if (!(t in types))
      throw new UsageError(`--type: expected one of ${Object.keys(types).join(', ')}, got '${values.type}'`);
    if (values.in !== undefined && positionals.length > 0)
      throw new UsageError(`expected the input once: --in ${values.in} and ${positionals[0]}`);
    const file = values.in ?? positionals[0];
    // no FILE, or '-': standard input, as sort(1) reads it
    const opened = file !== undefined && file !== '-' ? openInput(resolve(io.cwd, file), file) : undefined;
    // before the input is read and sorted: an --out that cannot be written fails at once
    const outFile = values.out !== undefined ? openOutput('--out', resolve(io.cwd, values.out)) : undefined;
    const input = opened?.stream ?? io.stdin;
    const total = opened?.size ?? 0;
    const progress = new Progress(io.stderr, { total, label: 'read', quiet: values.quiet === true });
    const a = values.text ? await readText(input, t, progress) : await readBinary(input, t, progress);
    progress.finish();
    const t0 = performance.now();
    learnedSort(a);
    const ms = performance.now() - t0;
    writeOut(outFile?.stream ?? io.stdout, a, values.text === true);
    await outFile?.close();
    if (!values.quiet)
      io.stderr.write(
        `sorted ${a.length} ${t} keys in ${ms.toFixed(1)} ms (${(((a.length / Math.max(ms, 0.001)) * 1000) / 1e6).toFixed(1)} M keys/s)\n`,
      );
    return 0;
  },
};

export const commands: Command[] = [sortCmd];

export const demos: DemoStep[] = [
  {
    name: 'learned-sort',
    async run(io) {
      const n = 2_000_000;
      const a = new Float64Array(n);
      let s = 7;
      for (let i = 0; i < n; i++) {
        s = (s * 16807) % 2147483647;
        const u = s / 2147483647;
        s = (s * 16807) % 2147483647;
        a[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * s) / 2147483647);
      }
      const b = a.slice();
      const stats = { path: 'learned' as const, heavyKeys: 0, overfullShare: 0 } as {
        path: string;
        heavyKeys: number;
        overfullShare: number;
      };
      let t0 = performance.now();
      learnedSort(a, stats as never);
      const tl = performance.now() - t0;
      t0 = performance.now();
      b.sort();
      const tb = performance.now() - t0;
      for (let i = 0; i < n; i++) if (!Object.is(a[i], b[i])) throw new Error(`demo: mismatch at ${i}`);
      io.stdout.write(
        `sorted ${n.toLocaleString('en')} normal doubles: learned sort (${stats.path} path) ${tl.toFixed(0)} ms, ` +
          `Float64Array.prototype.sort ${tb.toFixed(0)} ms (${(tb / tl).toFixed(2)}x); outputs identical\n`,
      );
    },
  },
];
