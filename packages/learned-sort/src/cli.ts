import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CliError, type Command, type DemoStep, Progress, parseFlags, UsageError } from '@strata/cli';
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

async function readText(input: Readable, t: TypeName): Promise<SortableArray> {
  const values: string[] = [];
  let rest = '';
  let line = 0;
  for await (const c of input) {
    const parts = (rest + (c as Buffer).toString('utf8')).split('\n');
    rest = parts.pop()!;
    values.push(...parts);
  }
  if (rest !== '') values.push(rest);
  const out = new types[t](values.length);
  const big = t === 'i64' || t === 'u64';
  let k = 0;
  for (const v of values) {
    line++;
    const s = v.trim();
    if (s === '') continue;
    if (big) {
      if (!/^-?\d+$/.test(s)) throw new CliError(`line ${line}: '${s.slice(0, 40)}' is not an integer`);
      const x = BigInt(s);
      const [lo, hi] = t === 'i64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      if (x < lo || x > hi) throw new CliError(`line ${line}: ${s.slice(0, 40)} is out of range for ${t}`);
      (out as BigInt64Array)[k++] = x;
    } else {
      const x = Number(s);
      if (Number.isNaN(x) && s !== 'NaN')
        throw new CliError(`line ${line}: '${s.slice(0, 40)}' is not a number`);
      if ((t === 'i32' || t === 'u32') && !Number.isInteger(x))
        throw new CliError(`line ${line}: '${s.slice(0, 40)}' is not an integer`);
      // a typed array would wrap an integer or round a float to infinity without a word
      const bad =
        t === 'i32'
          ? x < -(2 ** 31) || x >= 2 ** 31
          : t === 'u32'
            ? x < 0 || x >= 2 ** 32
            : t === 'f32' && Number.isFinite(x) && !Number.isFinite(Math.fround(x));
      if (bad) throw new CliError(`line ${line}: ${s.slice(0, 40)} is out of range for ${t}`);
      (out as Float64Array)[k++] = x;
    }
  }
  return out.subarray(0, k) as SortableArray;
}

function writeOut(out: Writable, a: SortableArray, text: boolean): Promise<void> {
  return new Promise((res, rej) => {
    out.on('error', rej);
    if (!text) {
      out.write(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    } else {
      const step = 65536;
      for (let i = 0; i < a.length; i += step) {
        const parts: string[] = [];
        for (let j = i; j < Math.min(a.length, i + step); j++) parts.push(String(a[j]));
        out.write(`${parts.join('\n')}\n`);
      }
    }
    if (out === process.stdout) res();
    else out.end(res);
  });
}

const sortCmd: Command = {
  name: 'sort',
  summary: 'sort a file of numbers (binary little-endian or text) with Learned Sort',
  help: `Sorts a file of little-endian binary numbers (or newline-separated numbers with --text) with
Learned Sort, and reports keys/s on stderr.

Usage: strata sort --type f64|f32|i32|u32|i64|u64 [--in FILE | FILE] [--out FILE] [--text]

  --type T     element type (default f64)
  --in FILE    input (default stdin; the file may also be given without --in)
  --out FILE   output (default stdout)
  --text       numbers as text, one per line

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
    const input = file !== undefined ? createReadStream(resolve(io.cwd, file)) : io.stdin;
    const total = file !== undefined ? statSync(resolve(io.cwd, file)).size : 0;
    const progress = new Progress(io.stderr, { total, label: 'read', quiet: values.quiet === true });
    const a = values.text ? await readText(input, t) : await readBinary(input, t, progress);
    progress.finish();
    const t0 = performance.now();
    learnedSort(a);
    const ms = performance.now() - t0;
    await writeOut(
      values.out ? createWriteStream(resolve(io.cwd, values.out)) : io.stdout,
      a,
      values.text === true,
    );
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
