/**
 * A TOKENS column's distinct keys from its JSON text in WebAssembly (assembly/tokens.ts, built to
 * build/tokens.wasm by the package's `build:wasm` script, which the repo's `npm run build` runs): the
 * scan, the dedupe and the distinct keys' bytes in the module, then one HighwayHash batch over them.
 * The same keys as keys.ts's `commitTokensJson` (the JavaScript scan, which stays the fallback: a
 * text with a non-ASCII token or a lone surrogate's escape, and a runtime without the module). In a
 * 2M-line TOKENS ingest of the bench's lines the JavaScript scan was the main thread's largest item
 * (about 10 ns a byte of the column's text; see the README's Figures).
 */
import { hash64Batch } from '@strata/highwayhash';
import { LazyModule, type ModuleExports } from './wasm.js';

interface Exports extends ModuleExports {
  regionsFrom(): number;
  tokenKeys: Scan;
  valueKeys: Scan;
}

/** The module's scans: text, its length, prefix, its length, then the regions (see assembly/tokens.ts). */
type Scan = (
  text: number,
  n: number,
  prefix: number,
  pl: number,
  out: number,
  offs: number,
  lens: number,
  hashes: number,
  table: number,
  slotsMax: number,
) => number;

/** Prefix bytes the module's region holds (a column number's digits and one byte; it reads 8). */
const prefixBytesMax = 56;
const wasmPageBytes = 65536;
/** Texts longer than this take the JavaScript scan (each call's regions are about 15 times its text). */
export const wasmTextBytesMax = 64 << 20;

const tokens = new LazyModule<Exports>('tokens.wasm');

/** The module when the scans use it. */
function active(): Exports | undefined {
  return tokens.get();
}

/** Which scans `tokenKeysOfJson` and `valueKeysOfJson` use: 'wasm', or 'js' (no module, or switched off). */
export function wasmScanEngine(): 'wasm' | 'js' {
  return active() ? 'wasm' : 'js';
}

/** Switches the WebAssembly scans off or back on (when the module loads); for tests. */
export function useWasmScans(on: boolean): void {
  tokens.use(on);
}

const align = (n: number) => (n + 7) & ~7;

/**
 * The distinct 53-bit keys (`tokenKey(col, token)`, HighwayHash) of the tokens in a TOKENS column's JSON
 * text (the cells as `JSON.stringify` writes them, UTF-8), or undefined when the text must take the
 * JavaScript scan (a token with non-ASCII bytes, a lone surrogate, no module). `prefix` is the UTF-8 of
 * `tokenKey(col, '')`.
 */
export function tokenKeysOfJson(
  prefix: Uint8Array,
  json: Uint8Array,
  hashKey: Uint8Array,
): Float64Array | undefined {
  const wasm = active();
  return wasm && keysOfJson(wasm, wasm.tokenKeys, 'commitTokensJson', prefix, json, hashKey);
}

/**
 * The distinct 53-bit keys (`valueKey(col, value)`) of a declared column's values in its JSON text, as
 * keys.ts's `commitValuesJson` takes them (a string's bytes, a number's text, nulls skipped), or
 * undefined when the text must take that JavaScript scan (a string with an escape, no module). `prefix`
 * is the UTF-8 of `valueKey(col, '')`. A page of the bench's lines: 1,024 levels or components in runs.
 */
export function valueKeysOfJson(
  prefix: Uint8Array,
  json: Uint8Array,
  hashKey: Uint8Array,
): Float64Array | undefined {
  const wasm = json.length < 2 ? undefined : active();
  return wasm && keysOfJson(wasm, wasm.valueKeys, 'commitValuesJson', prefix, json, hashKey);
}

function keysOfJson(
  wasm: Exports,
  scan: Scan,
  /** The JavaScript scan this one stands for, named in its errors. */
  scanName: string,
  prefix: Uint8Array,
  json: Uint8Array,
  hashKey: Uint8Array,
): Float64Array | undefined {
  if (prefix.length > prefixBytesMax || json.length > wasmTextBytesMax) return undefined;
  const n = json.length;
  const keysMax = (n >> 1) + 2;
  let slots = 1;
  while (slots < 2 * keysMax) slots *= 2;
  const prefixAt = wasm.regionsFrom();
  const textAt = prefixAt + prefixBytesMax + 8;
  const offsAt = align(textAt + n + 16);
  const lensAt = offsAt + 4 * keysMax;
  const hashesAt = lensAt + 4 * keysMax;
  const tableAt = align(hashesAt + 4 * keysMax);
  const outAt = tableAt + 8 * slots;
  const end = outAt + keysMax * prefix.length + n + 16;
  tokens.used(end);
  const mem = wasm.memory;
  if (end > mem.buffer.byteLength) mem.grow(Math.ceil((end - mem.buffer.byteLength) / wasmPageBytes));
  const u8 = new Uint8Array(mem.buffer);
  u8.set(prefix, prefixAt);
  u8.set(json, textAt);
  u8[textAt + n] = 0x22; // the sentinel the module's scans stop at
  const d = scan(textAt, n, prefixAt, prefix.length, outAt, offsAt, lensAt, hashesAt, tableAt, slots);
  if (d === -1) return undefined;
  if (d < 0) throw new Error(`${scanName}: an unterminated string in a column section`);
  const out = new Float64Array(d);
  if (d === 0) return out;
  const offs = new Uint32Array(mem.buffer, offsAt, d);
  const lens = new Uint32Array(mem.buffer, lensAt, d);
  const used = offs[d - 1]! + lens[d - 1]!;
  const words = new Uint32Array(2 * d);
  hash64Batch(hashKey, u8.subarray(outAt, outAt + used), offs, lens, words);
  for (let i = 0; i < d; i++) out[i] = (words[2 * i + 1]! & 0x1fffff) * 4294967296 + words[2 * i]!;
  return out;
}
