/**
 * Loads the prefilter's scan (assembly/scan.ts, built to build/scan.wasm by `npm run build`) and gives each
 * automaton an instance and memory of its own, freed with it. The loader lays the memory out (see
 * assembly/scan.ts); the automaton's table is built in place, and each scan's input is copied into the
 * space after the tables, which grows to the longest input scanned.
 */
import { readFileSync } from 'node:fs';

/** The parts of the WebAssembly JS API used here (Node has them; their types ship only in lib.dom). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (
    module: object,
    imports: Record<string, Record<string, unknown>>,
  ) => { exports: Record<string, unknown> };
  Memory: new (size: { initial: number }) => WasmMemory;
}
interface ScanExports {
  setup(
    deltaAt: number,
    headIdAt: number,
    seenAt: number,
    outAt: number,
    visitedAt: number,
    touchedAt: number,
    lastAt: number,
    longest: number,
    failAt: number,
    kidsAt: number,
    edgeAt: number,
    builtAt: number,
    chainAt: number,
    noOutput: number,
  ): void;
  scan(input: number, len: number, from: number): number;
  scanSkip(input: number, len: number, from: number): number;
  setupSkip(tablesAt: number, depth1Max: number): void;
  rowsBuilt(): number;
  wordSumLE(from: number, to: number): number;
}

const wasmPageBytes = 0x10000;
/**
 * `scanSkip`'s space (see `setupSkip` in assembly/scan.ts): its four nibble tables (64 bytes), the groups
 * of one-byte patterns by state (256), its counts (entries at 320, checks at 356), the nibble mask (324,
 * 16 bytes) and the working copy of the first table (340, 16 bytes).
 */
const skipTablesBytes = 360;

/** A group of the pairs of bytes that begin patterns (`WasmScan.skipBetween`). */
export interface SkipGroup {
  lo1: number;
  hi1: number;
  lo2: number;
  hi2: number;
  one: number;
}
/** Input space a memory starts with; it grows (whole pages) to the longest input. */
const inputBytesInitial = 0x10000;

let compiled: object | null | undefined;

/** The compiled module, or undefined when build/scan.wasm is missing or this runtime cannot load it. */
function scanModule(): object | undefined {
  if (compiled === undefined) {
    try {
      const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
      compiled = new api.Module(readFileSync(new URL('../build/scan.wasm', import.meta.url)));
    } catch {
      compiled = null;
    }
  }
  return compiled ?? undefined;
}

/**
 * The module's word sum (`wordSumLE`) in an instance and memory of its own, for the transport checksums
 * (decode.ts): a packet's bytes are copied there and summed 16 at a time. One per thread, made on first
 * use; undefined where the module cannot load.
 */
export class WasmWordSum {
  private readonly memory: WasmMemory;
  private readonly sumLE: (from: number, to: number) => number;
  private mem8: Uint8Array;

  constructor(module: object) {
    const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    this.memory = new api.Memory({ initial: 2 });
    this.sumLE = (
      new api.Instance(module, { env: { memory: this.memory } }).exports as unknown as ScanExports
    ).wordSumLE;
    this.mem8 = new Uint8Array(this.memory.buffer);
  }

  /**
   * The sum of `b[from, to)` as big-endian 16-bit words (an odd last byte padded with zero), folded to 16
   * bits: congruent modulo 0xffff to the words' sum and 0 only when every byte is.
   */
  sum(b: Uint8Array, from: number, to: number): number {
    // the bytes up to `to` (a frame: what follows it is at most the link's padding), and 16 more that the
    // sum zeroes
    const src = b.length - to > 64 ? b.subarray(0, to) : b;
    const need = src.length + 16;
    if (need > this.mem8.length) {
      this.memory.grow(Math.ceil((need - this.mem8.length) / wasmPageBytes));
      this.mem8 = new Uint8Array(this.memory.buffer);
    }
    this.mem8.set(src, 0);
    const x = this.sumLE(from, to);
    // the little-endian words' sum, swapped, is the big-endian words' (RFC 1071 2(B))
    return ((x & 0xff) << 8) | (x >>> 8);
  }
}

let wordSummer: WasmWordSum | null | undefined;

/** This thread's `WasmWordSum`, or undefined where the module cannot load. */
export function wasmWordSum(): WasmWordSum | undefined {
  if (wordSummer === undefined) {
    const module = scanModule();
    wordSummer = module ? new WasmWordSum(module) : null;
  }
  return wordSummer ?? undefined;
}

/** Whether the WebAssembly scan can be used in this runtime. */
export function wasmScanAvailable(): boolean {
  return scanModule() !== undefined;
}

export class WasmScan {
  private readonly memory: WasmMemory;
  private readonly exports: ScanExports;
  private readonly seenAt: number;
  private readonly outAt: number;
  private readonly outLength: number;
  private readonly inputAt: number;
  private mem8: Uint8Array;
  /** The states the last scan reported (its first `scan()` entries). */
  reported: Int32Array;
  /** Where the module leaves the state after the last scan's input (one entry). */
  private last: Uint32Array;

  private readonly headIdAt: number;
  private readonly deltaAt: number;
  private readonly visitedAt: number;
  private readonly touchedAt: number;
  private readonly lastAt: number;
  private readonly noOutput: number;
  private readonly skipAt: number;
  private readonly failAt: number;
  private readonly kidsAt: number;
  private readonly edgeAt: number;
  private readonly builtAt: number;
  private readonly chainAt: number;
  /** Whether scans search for the places a pattern can start (`skipBetween`). */
  skipping = false;

  /**
   * Memory for an automaton of `states` states (at most 65,536) whose pattern ids are below `noOutput`;
   * then `ready` gives it the trie. Throws when the module is not available (`wasmScanAvailable`).
   */
  constructor(states: number, noOutput: number) {
    const module = scanModule();
    if (!module) throw new Error('ids: build/scan.wasm is missing or cannot load (run `npm run build`)');
    if (states > 0x10000)
      throw new Error(`ids: the WebAssembly scan takes at most 65,536 states, not ${states}`);
    const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    let at = 0;
    const place = (bytes: number) => {
      const p = at;
      at = (at + bytes + 7) & ~7;
      return p;
    };
    this.deltaAt = place(states * 256 * 2);
    this.headIdAt = place(states * 4);
    this.noOutput = noOutput;
    this.seenAt = place(noOutput + 1);
    this.outLength = noOutput + 1;
    this.outAt = place(this.outLength * 4);
    this.visitedAt = place(states);
    this.touchedAt = place(states * 4);
    this.lastAt = place(4);
    this.skipAt = place(skipTablesBytes);
    this.failAt = place(states * 4);
    this.kidsAt = place((states + 1) * 4);
    this.edgeAt = place(states);
    this.builtAt = place(states);
    this.chainAt = place(states * 4);
    this.inputAt = place(0);
    this.memory = new api.Memory({ initial: Math.ceil((at + inputBytesInitial) / wasmPageBytes) });
    this.exports = new api.Instance(module, { env: { memory: this.memory } })
      .exports as unknown as ScanExports;
    this.mem8 = new Uint8Array(this.memory.buffer);
    this.reported = new Int32Array(this.memory.buffer, this.outAt, this.outLength);
    this.last = new Uint32Array(this.memory.buffer, this.lastAt, 1);
  }

  /**
   * The automaton: each state's output-chain head (`headId`, one per state), the longest pattern's length,
   * and the trie the module builds the table's rows from as scans reach them (assembly/scan.ts,
   * `buildRow`): the states numbered breadth-first, each one's fail state (`fail`), the first of its
   * children (`kids[s]`, its children being `kids[s]` to `kids[s + 1] - 1`; `states + 1` entries), and the
   * folded byte into each state (`edge`).
   */
  ready(headId: Int32Array, longest: number, fail: Int32Array, kids: Int32Array, edge: Uint8Array): void {
    const bytes = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    this.mem8.set(bytes(headId), this.headIdAt);
    this.mem8.set(bytes(fail), this.failAt);
    this.mem8.set(bytes(kids), this.kidsAt);
    this.mem8.set(edge, this.edgeAt);
    this.mem8[this.seenAt + this.noOutput] = 1;
    // (`visited` starts as the memory's zeros: a state is looked at until its row is built)
    this.exports.setup(
      this.deltaAt,
      this.headIdAt,
      this.seenAt,
      this.outAt,
      this.visitedAt,
      this.touchedAt,
      this.lastAt,
      longest,
      this.failAt,
      this.kidsAt,
      this.edgeAt,
      this.builtAt,
      this.chainAt,
      this.noOutput,
    );
  }

  /** How many of the table's rows are built (of `states`). */
  get rowsBuilt(): number {
    return this.exports.rowsBuilt();
  }

  /**
   * Scans `data` resumed in state `from`: reports the states whose output chains hold every pattern ending
   * in `data` (`reported`, returning how many; each chain head once); `lastState` gives the state to
   * resume in.
   */
  scan(data: Uint8Array, from: number): number {
    const need = this.inputAt + data.length;
    if (need > this.mem8.length) {
      this.memory.grow(Math.ceil((need - this.mem8.length) / wasmPageBytes));
      // growing detached the old views (their length now reads 0)
      this.mem8 = new Uint8Array(this.memory.buffer);
      this.reported = new Int32Array(this.memory.buffer, this.outAt, this.outLength);
      this.last = new Uint32Array(this.memory.buffer, this.lastAt, 1);
    }
    this.mem8.set(data, this.inputAt);
    return this.skipping
      ? this.exports.scanSkip(this.inputAt, data.length, from)
      : this.exports.scan(this.inputAt, data.length, from);
  }

  /**
   * From now on scans search for the places a pattern can start and run the automaton only from there
   * (assembly/scan.ts, `scanSkip`; the same reports and states): `groups` (at most 8) cover the pairs of
   * bytes that begin patterns, each as the nibbles of its first bytes and of the bytes after them (16-bit
   * masks: bit n for a nibble n), and `one`, the state of a one-byte pattern when the group holds only that
   * (else 0); `depth1Max` is the last state of depth 1 (states numbered breadth-first).
   */
  skipBetween(groups: readonly SkipGroup[], depth1Max: number): void {
    if (groups.length > 8) throw new Error(`ids: the skip scan takes at most 8 groups, not ${groups.length}`);
    const t = this.mem8;
    const at = this.skipAt;
    t.fill(0, at, at + skipTablesBytes);
    for (let k = 0; k < groups.length; k++) {
      const g = groups[k]!;
      for (let n = 0; n < 16; n++) {
        if (g.lo1 & (1 << n)) t[at + n]! |= 1 << k;
        if (g.hi1 & (1 << n)) t[at + 16 + n]! |= 1 << k;
        if (g.lo2 & (1 << n)) t[at + 32 + n]! |= 1 << k;
        if (g.hi2 & (1 << n)) t[at + 48 + n]! |= 1 << k;
      }
      if (g.one > 0) t[at + 64 + g.one] = 1 << k;
    }
    t.fill(0x0f, at + 324, at + 340);
    this.exports.setupSkip(this.skipAt, depth1Max);
    this.skipping = true;
  }

  /**
   * What the last skipping scan did: `entries`, the places it ran the automaton from; `checks`, the
   * places its vectors turned up and the table looked at.
   */
  skipCounts(): { entries: number; checks: number } {
    const v = new Int32Array(this.memory.buffer, this.skipAt + 320, 10);
    return { entries: v[0]!, checks: v[9]! };
  }

  /** The state after the last scan's input. */
  lastState(): number {
    return this.last[0]!;
  }
}
