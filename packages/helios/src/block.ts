/**
 * Data blocks: one chunk of a source's rows, cut into pages of rows, column-major within a page, compressed.
 * Version 5 ("HLB5", written now) and version 4 ("HLB4") put everything a search needs to choose pages in a
 * directory at the front, so one range get reads it, and make each page a range of its own with its own
 * checksum; they differ only in how a section is compressed (5: brotli; 4: raw deflate). The brotli quality
 * is the writer's choice (a decoder takes any): 0 since 2026-12-03 17:10, 1 before (see sections.ts).
 *
 *   0       4        8          12          20            20+headLen        dirEnd = 20+headLen+filtersLen
 *   | HLB5  | u32    | u32      | u32 x 2   | header JSON  | page 0 filter,  | page 0 | page 1 | ...
 *   |       | headLen| filtersLen| dir check|              | page 1 filter...|        |        |
 *   page = brotli(JSON of column 0's cells in the page) | brotli(... column 1) | ...
 *
 * The header says where the rows came from (source, byte offsets [from, to)), how many there are, each
 * column's min/max (numbers only) for pruning, and per page its row count, filter and section lengths
 * and a HighwayHash-64 of the page's bytes (`check`). "dir check" is a HighwayHash-64 of the header and
 * filters. Pages follow the directory in order, so page p starts at dirEnd plus the lengths of the pages
 * before it. A page's key filter is a Bloom filter of the index keys of its rows (the keys the level-0
 * leaf holds): a search the index sent to this block reads the directory, then only the pages that may
 * hold its keys (`BlockReader.open`, then `load`), and checks only those pages' checksums.
 *
 * Still read: version 4 (written until 2026-12-03 08:00: sections raw deflate, level 1, read as version 5 is),
 * version 3 ("HLB3": u32 header length | header JSON | per page its filter and sections, one checksum over
 * all of them in the header) and version 2 ("HLB2": the whole block one page, no filter); 2 and 3 are read
 * whole.
 */
import { isAscii } from 'node:buffer';
import { brotliDecompressSync, inflateRawSync } from 'node:zlib';
import { kindOf } from '@strata/cli';
import { createHasher, hash64Words } from '@strata/highwayhash';
import type { Cell, Row } from './formats.js';
import { compressEach, compressSections, type SectionCodec, sectionBuffer } from './sections.js';

/** What a block reader needs of an object store (an @strata/objstore `ObjectStore` has it). */
export interface BlockSource {
  /** The object's bytes, or only the inclusive byte range [start, end] (an end past the object's end is clamped). */
  get(key: string, opts?: { range?: { start: number; end: number } }): Promise<Uint8Array>;
}

export interface BlockHeader {
  id: string;
  source: string;
  from: number;
  to: number;
  rows: number;
  rawBytes: number;
  min: Cell[];
  max: Cell[];
  /** Version 2 only: compressed length of each column's section, in column order. */
  sections?: number[];
  /** Versions 3, 4 and 5: the pages, in row order. */
  pages?: PageInfo[];
  /** Versions 2 and 3: HighwayHash-64 (hex) of the whole body (versions 4 and 5 check each page). */
  check?: string;
}

export interface PageInfo {
  rows: number;
  /** Bytes of the page's key filter (0: none, the page may hold any key). */
  filter: number;
  /** Compressed length of each column's section in the page, in column order. */
  sections: number[];
  /** Versions 4 and 5: HighwayHash-64 (hex) of the page's bytes (its sections, in order). */
  check?: string;
}

/** Rows per page: a needle query inflates and parses about this many rows of a column, not the block's. */
export const blockPageRows = 1024;
/** Key filter bits per distinct key (4 probes: about 1.2% false positives). */
const filterBitsPerKey = 10;
const filterProbes = 4;

/**
 * The filter's probes for `key` (uniform hash bits, so two halves give them): sets them when `set`, else
 * answers whether all are set.
 */
function probe(f: Uint8Array, key: number, set: boolean): boolean {
  const m = f.length * 8;
  let h = key >>> 0;
  const d = (Math.floor(key / 4294967296) * 0x9e3779b1 + (h >>> 16)) | 1;
  for (let j = 0; j < filterProbes; j++) {
    const bit = (h >>> 0) % m;
    if (set) f[bit >>> 3]! |= 1 << (bit & 7);
    else if ((f[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
    h = (h + d) | 0;
  }
  return true;
}

/** A Bloom filter over 53-bit keys. */
export function buildKeyFilter(keys: Float64Array): Uint8Array {
  const f = new Uint8Array(Math.max(8, Math.ceil((keys.length * filterBitsPerKey) / 8)));
  for (let i = 0; i < keys.length; i++) probe(f, keys[i]!, true);
  return f;
}

/** Whether a key filter may hold `key` (an empty filter holds everything). */
export function filterMayHold(f: Uint8Array, key: number): boolean {
  return f.length === 0 || probe(f, key, false);
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** zlib's smallest output chunk, in bytes (a smaller `chunkSize` is refused). */
const inflateChunkBytesMin = 64;
const idKey = new Uint8Array(32).fill(3);

/** Bound on a block's decompressed body, so a hostile block cannot exhaust memory. */
export const blockBodyBytesMax = 256 << 20;
/**
 * Bytes a reader asks for first. A 4 MiB chunk makes about 30 pages whose filters take about 1 KiB each,
 * so the directory of such a block fits, usually with the first pages; a longer one takes a second get.
 */
export const blockPrefixBytes = 64 << 10;
/** Bound on a version 4/5 directory (header + filters), so a corrupt length cannot ask for a huge range. */
export const blockDirectoryBytesMax = 16 << 20;
/** Bytes before a version 4/5 header: magic, header length, filters length, directory checksum. */
const v4FixedBytes = 20;

function hex64(w: Uint32Array): string {
  return w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0');
}

const idHasher = createHasher(idKey);

/**
 * Refuses a chunk that cannot be one, naming what is wrong: a source that is not a non-empty string,
 * offsets that are not whole numbers with 0 <= from <= to, content that is not bytes or is not `to - from`
 * of them, lines that are not strings. (The ingest server checked this; a caller of `ingestChunk` could
 * store a block of offsets NaN or -5.)
 */
export function checkChunk(
  source: unknown,
  from: number,
  to: number,
  lines: unknown,
  content: unknown,
): void {
  if (typeof source !== 'string' || source === '')
    throw new TypeError(
      `ingestChunk: source must be a non-empty string, got ${source === '' ? "''" : kindOf(source)}`,
    );
  if (!(Number.isSafeInteger(from) && from >= 0 && Number.isSafeInteger(to) && to >= from))
    throw new RangeError(`ingestChunk: need whole offsets 0 <= from <= to, got from ${from}, to ${to}`);
  if (!(content instanceof Uint8Array))
    throw new TypeError(`ingestChunk: content must be a Uint8Array, got ${kindOf(content)}`);
  if (content.length !== to - from)
    throw new RangeError(`ingestChunk: content is ${content.length} bytes, but to - from is ${to - from}`);
  if (!Array.isArray(lines))
    throw new TypeError(`ingestChunk: lines must be an array of strings, got ${kindOf(lines)}`);
  for (let i = 0; i < lines.length; i++)
    if (typeof lines[i] !== 'string')
      throw new TypeError(`ingestChunk: line ${i} must be a string, got ${kindOf(lines[i])}`);
}

/** The block id: a HighwayHash of source, offsets and content, so a re-sent chunk gets the same id. */
export function blockId(source: string, from: number, to: number, content: Uint8Array): string {
  // streamed (head, then content): joining them first cost a 4 MiB allocation and copy a chunk
  idHasher.reset();
  idHasher.update(enc.encode(`${source}\u0000${from}\u0000${to}\u0000`)).update(content);
  return idHasher.digest64().toString(16).padStart(16, '0');
}

/** Per-column min/max over numeric cells, of a page's columns (`columns[c][i]`), into `into`. */
function minMax(columns: Cell[][], into: { min: Cell[]; max: Cell[] }): void {
  const { min, max } = into;
  for (let c = 0; c < columns.length; c++) {
    const col = columns[c]!;
    let lo = min[c] ?? null;
    let hi = max[c] ?? null;
    for (let i = 0; i < col.length; i++) {
      const v = col[i];
      if (typeof v !== 'number') continue;
      if (lo === null || v < (lo as number)) lo = v;
      if (hi === null || v > (hi as number)) hi = v;
    }
    min[c] = lo;
    max[c] = hi;
  }
}

export interface BlockMeta {
  id: string;
  source: string;
  from: number;
  to: number;
  rawBytes: number;
}

export interface EncodeOptions {
  pageRows?: number;
  /**
   * The distinct index keys of a page's rows (unsorted): each page gets a key filter of its rows' keys.
   * `columns[c][i]` is row i's cell of column c; `columnsJson` is each column's cells as JSON text (UTF-8),
   * the text its section compresses.
   */
  pageKeys?: (columns: Cell[][], columnsJson: Uint8Array[]) => Float64Array;
  /** The version to write: 5 (the default, brotli sections) or 4 (raw deflate sections, as written before). */
  version?: BlockVersion;
}

/** The versions `encodeBlock` writes (and the reader reads them, and 2 and 3). */
export type BlockVersion = 4 | 5;

export interface EncodedBlock {
  bytes: Uint8Array;
  header: BlockHeader;
  /** Per page, the keys its filter holds (their union is the block's leaf). */
  pageKeys: Float64Array[];
  /** Bytes from the block's start to its first page: what `BlockReader.open` must read first. */
  directoryBytes: number;
}

/** A block before compression: per page its filter, then each column's JSON text (to be compressed). */
interface BlockPlan {
  meta: BlockMeta;
  rows: number;
  min: Cell[];
  max: Cell[];
  ncols: number;
  filters: Uint8Array[];
  /** Every section's JSON text, one after another in one buffer (sent to the compression worker whole). */
  text: Uint8Array;
  /** Section i is text[textOffs[i], textOffs[i + 1]). */
  textOffs: Uint32Array;
  pageRows: number[];
  pageKeys: Float64Array[];
}

/**
 * A block's rows made a page at a time, as columns: `columns(start, end)[c][i]` is row start + i's cell
 * of column c (null when absent). A page's cells are garbage before the next page's are made (they die
 * young instead of surviving a whole chunk), and no array is made per row.
 */
export interface RowSource {
  length: number;
  /**
   * A source may write a column's JSON text itself into `json[c]` (exactly the UTF-8 of `JSON.stringify`
   * of its cells; read before the next call): its cells are then an empty array.
   */
  columns(start: number, end: number, json?: (Uint8Array | undefined)[]): Cell[][];
}

/** An array of rows as a RowSource (each page's rows turned into columns). */
function rowsSource(rows: Row[], ncols: number): RowSource {
  return {
    length: rows.length,
    columns: (start, end) => {
      const n = Math.max(0, Math.min(end, rows.length) - start);
      const cols: Cell[][] = [];
      for (let c = 0; c < ncols; c++) {
        const col: Cell[] = new Array(n);
        for (let i = 0; i < n; i++) col[i] = rows[start + i]![c] ?? null;
        cols.push(col);
      }
      return cols;
    },
  };
}

/** Bytes of one integer cell's JSON and its comma at most: a sign and 15 digits (larger ones are not taken). */
const intJsonBytesMax = 17;
/** The ASCII digits of 0-9999, four to a word (zero-padded, first digit in the low byte). */
const digits4 = Uint32Array.from({ length: 10000 }, (_, i) => {
  const s = String(i).padStart(4, '0');
  return s.charCodeAt(0) | (s.charCodeAt(1) << 8) | (s.charCodeAt(2) << 16) | (s.charCodeAt(3) << 24);
});
/**
 * Writes 0 <= v < 10000 as its digits (no leading zeros) at b[o] with one word store (the word's bytes past
 * the digits are garbage the next write covers, within `intsJson`'s room); returns the offset after the
 * digits.
 */
function leadDigits(bv: DataView, o: number, v: number): number {
  const skip = v < 10 ? 3 : v < 100 ? 2 : v < 1000 ? 1 : 0;
  bv.setUint32(o, digits4[v]! >>> (8 * skip), true);
  return o + 4 - skip;
}

/**
 * A column's cells as JSON.stringify writes them (UTF-8), at b[o], when every cell is an integer of at
 * most 15 digits or null: returns the offset after it, else -1 (b past o is then garbage). `b` must have
 * room for col.length * intJsonBytesMax + 2 bytes. JSON.stringify makes a string per number (a
 * timestamp's 13 digits through the double-to-string path) and then it is encoded again: this took 20 ms
 * per 1M timestamps against 95. Digits go four to a word store: 12.0-12.9 ns a value against 18.7-19.2
 * byte by byte (timestamps and pids of the bench, alternated, 2026-12-03 14:36). A value equal to the one
 * before (a log's timestamp, the same second for many lines) copies that one's bytes a word at a time.
 */
function intsJson(col: Cell[], b: Uint8Array, o: number): number {
  const bv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[o++] = 0x5b; // [
  // the last integer written: its value and its bytes [lastAt, lastAt + lastLen)
  let last = Number.NaN;
  let lastAt = 0;
  let lastLen = 0;
  for (let i = 0; i < col.length; i++) {
    if (i > 0) b[o++] = 0x2c; // ,
    let v = col[i];
    if (v === last) {
      // the words past its bytes are garbage the next write covers (lastAt + lastLen < o: a comma between)
      for (let k = 0; k < lastLen; k += 4) bv.setUint32(o + k, bv.getUint32(lastAt + k, true), true);
      o += lastLen;
      continue;
    }
    if (v === null || v === undefined) {
      b[o] = 0x6e; // null
      b[o + 1] = 0x75;
      b[o + 2] = 0x6c;
      b[o + 3] = 0x6c;
      o += 4;
      continue;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v >= 1e15 || v <= -1e15) return -1;
    last = v;
    lastAt = o;
    if (v < 0) {
      b[o++] = 0x2d; // - (and -0 is written as 0, as JSON.stringify does)
      v = -v;
    }
    // four digits a word store, the groups from the last (v < 1e15: v / 1e8 is at least 1e-8 away from
    // the next integer above it, more than its rounding error, so its floor is exact)
    if (v < 10000) o = leadDigits(bv, o, v);
    else if (v < 1e8) {
      const hi = Math.floor(v / 10000);
      o = leadDigits(bv, o, hi);
      bv.setUint32(o, digits4[v - hi * 10000]!, true);
      o += 4;
    } else {
      const hi = Math.floor(v / 1e8);
      const lo = v - hi * 1e8;
      if (hi < 10000) o = leadDigits(bv, o, hi);
      else {
        const top = Math.floor(hi / 10000);
        o = leadDigits(bv, o, top);
        bv.setUint32(o, digits4[hi - top * 10000]!, true);
        o += 4;
      }
      const mid = Math.floor(lo / 10000);
      bv.setUint32(o, digits4[mid]!, true);
      bv.setUint32(o + 4, digits4[lo - mid * 10000]!, true);
      o += 8;
    }
    lastLen = o - lastAt;
  }
  b[o++] = 0x5d; // ]
  return o;
}

function planBlock(meta: BlockMeta, rows: RowSource, ncols: number, opts: EncodeOptions): BlockPlan {
  const per = Math.max(1, opts.pageRows ?? blockPageRows);
  const pageCount = Math.max(1, Math.ceil(rows.length / per)); // an empty block is one empty page
  // No reference to the rows stays in the plan: they can be collected while the sections are compressed.
  const plan: BlockPlan = {
    meta,
    rows: rows.length,
    min: new Array(ncols).fill(null),
    max: new Array(ncols).fill(null),
    ncols,
    filters: [],
    text: new Uint8Array(0),
    textOffs: new Uint32Array(pageCount * ncols + 1),
    pageRows: [],
    pageKeys: [],
  };
  // The sections are written into one buffer (grown when a guess from the raw bytes falls short): one
  // allocation a block instead of one a section, and one transfer to the compression worker instead of a copy.
  let text = sectionBuffer(Math.ceil(meta.rawBytes * 1.25) + (64 << 10));
  let used = 0;
  const room = (bytes: number) => {
    if (used + bytes <= text.length) return;
    const grown = new Uint8Array(Math.max(text.length * 2, used + bytes));
    grown.set(text.subarray(0, used));
    text = grown;
  };
  // Per column: whether a page of it was not all integers (and nulls): its next pages go to JSON.stringify.
  const notInts: boolean[] = new Array(ncols).fill(false);
  // Per column: its JSON text when the source wrote it (see RowSource).
  const given: (Uint8Array | undefined)[] = new Array(ncols).fill(undefined);
  for (let p = 0; p < pageCount; p++) {
    given.fill(undefined);
    const page = rows.columns(p * per, Math.min(rows.length, (p + 1) * per), given);
    plan.pageRows.push(Math.max(0, Math.min(rows.length, (p + 1) * per) - p * per));
    minMax(page, plan);
    const texts: Uint8Array[] = [];
    for (let c = 0; c < ncols; c++) {
      const col = page[c]!;
      const start = used;
      let end = -1;
      const json = given[c];
      if (json !== undefined) {
        room(json.length);
        text.set(json, used);
        end = used + json.length;
      } else if (!notInts[c] && typeof col[0] === 'number') {
        room(col.length * intJsonBytesMax + 2);
        end = intsJson(col, text, used);
        if (end < 0) notInts[c] = true;
      }
      if (end >= 0) used = end;
      else {
        const json = JSON.stringify(col);
        room(json.length * 3);
        used += enc.encodeInto(json, text.subarray(used)).written;
      }
      plan.textOffs[p * ncols + c + 1] = used;
      texts.push(text.subarray(start, used));
    }
    if (opts.pageKeys) {
      const keys = opts.pageKeys(page, texts);
      plan.pageKeys.push(keys);
      plan.filters.push(buildKeyFilter(keys));
    } else plan.filters.push(new Uint8Array(0));
  }
  plan.text = text.subarray(0, used);
  return plan;
}

/** The block's bytes (version 4 or 5) from its plan and its sections compressed (in plan order). */
function packBlock(plan: BlockPlan, sections: Uint8Array[], version: BlockVersion): EncodedBlock {
  const { ncols } = plan;
  const pageCount = plan.pageRows.length;
  let pagesLen = 0;
  let filtersLen = 0;
  for (let p = 0; p < pageCount; p++) filtersLen += plan.filters[p]!.length;
  for (const z of sections) pagesLen += z.length;
  // the pages first, so each page's checksum can go into the header
  const body = new Uint8Array(pagesLen);
  const pages: PageInfo[] = [];
  let o = 0;
  for (let p = 0; p < pageCount; p++) {
    const start = o;
    const lens: number[] = [];
    for (let c = 0; c < ncols; c++) {
      const z = sections[p * ncols + c]!;
      body.set(z, o);
      o += z.length;
      lens.push(z.length);
    }
    const check = hex64(hash64Words(idKey, body.subarray(start, o)));
    pages.push({ rows: plan.pageRows[p]!, filter: plan.filters[p]!.length, sections: lens, check });
  }
  const header: BlockHeader = { ...plan.meta, rows: plan.rows, min: plan.min, max: plan.max, pages };
  const h = enc.encode(JSON.stringify(header));
  const dirEnd = v4FixedBytes + h.length + filtersLen;
  const out = new Uint8Array(dirEnd + pagesLen);
  out.set([0x48, 0x4c, 0x42, 0x30 + version]);
  const dv = new DataView(out.buffer);
  dv.setUint32(4, h.length, true);
  dv.setUint32(8, filtersLen, true);
  out.set(h, v4FixedBytes);
  o = v4FixedBytes + h.length;
  for (const f of plan.filters) {
    out.set(f, o);
    o += f.length;
  }
  const dirCheck = hash64Words(idKey, out.subarray(v4FixedBytes, dirEnd));
  dv.setUint32(12, dirCheck[0]!, true);
  dv.setUint32(16, dirCheck[1]!, true);
  out.set(body, dirEnd);
  return { bytes: out, header, pageKeys: plan.pageKeys, directoryBytes: dirEnd };
}

/** How a version's sections are compressed. */
function codecOf(version: BlockVersion): SectionCodec {
  return version === 5 ? 'brotli' : 'deflate';
}

/**
 * Encodes a block. With `pageKeys` (the distinct index keys of some rows), each page carries a key filter
 * of its rows' keys; each page's keys are returned in `pageKeys` (their union is the block's leaf keys).
 */
export function encodeBlock(
  meta: BlockMeta,
  rows: Row[],
  ncols: number,
  opts: EncodeOptions = {},
): EncodedBlock {
  const plan = planBlock(meta, rowsSource(rows, ncols), ncols, opts);
  const version = opts.version ?? 5;
  return packBlock(plan, compressEach(plan.text, plan.textOffs, codecOf(version)), version);
}

/**
 * `encodeBlock` with the compression of every section on a worker thread: rows, keys and JSON are done
 * before this returns its promise; the compression then runs beside the caller's next work (another core).
 * The bytes are the same as `encodeBlock`'s.
 */
export function encodeBlockAsync(
  meta: BlockMeta,
  rows: RowSource,
  ncols: number,
  opts: EncodeOptions = {},
): Promise<EncodedBlock> {
  const plan = planBlock(meta, rows, ncols, opts);
  const version = opts.version ?? 5;
  return compressSections(plan.text, plan.textOffs, codecOf(version)).then((z) =>
    packBlock(plan, z, version),
  );
}

/**
 * Reads a block one page and one column at a time: a query inflates and parses only the pages its keys may
 * be in and the columns it tests, and can look for a needle in a column's text before parsing it at all.
 *
 * Two ways in: `new BlockReader(bytes, key)` with the whole object (scans, erasure, the indexer), or
 * `await BlockReader.open(store, key)`, which reads a version 4/5 block's directory with one range get and
 * fetches pages only when `load` asks for them, adjacent pages in one range get (older versions are read
 * whole). A version 4/5 page's checksum is checked when the page is first used, so a corrupt page fails with
 * an error naming the block and the page, while the block's other pages still read.
 */
export class BlockReader {
  readonly header: BlockHeader;
  readonly pages: PageInfo[];
  readonly version: 2 | 3 | BlockVersion;
  /** Versions 4 and 5: bytes from the object's start to its first page (what `open` must read first); else 0. */
  readonly directoryBytes: number = 0;
  /** Bytes of the object fetched (the whole object when it was given whole) and the gets that fetched them. */
  bytesFetched: number;
  getsMade = 1;
  /** Per page: its key filter (empty: none). */
  private readonly filters: Uint8Array[] = [];
  /** Per page: its offset (in the object for versions 4 and 5, in the body for 2 and 3) and length. */
  private readonly pageOffset: number[] = [];
  private readonly pageLength: number[] = [];
  /** Per page: its bytes once there (`undefined` until loaded), and whether they passed the checksum. */
  private readonly data: (Uint8Array | undefined)[] = [];
  private readonly checked: boolean[] = [];
  /** Per page: the offset of each column section within the page. */
  private readonly sectionOffset: number[][] = [];
  private readonly firstRow: number[] = [];
  private readonly texts = new Map<number, string>();
  private readonly cols = new Map<number, Cell[]>();
  /** Per (page, column): where its cells lie in its JSON text, as far as found (`cellScan`). */
  private readonly offsets = new Map<number, CellScan>();
  private bodyBytesLeft = blockBodyBytesMax;
  private dir: Uint8Array | undefined;
  /**
   * Per column: the largest inflated section seen (a Stream gives each of its readers the same array), so
   * an inflate writes one output buffer of about the right size instead of 16 KiB chunks joined by a copy:
   * every buffer is external memory, which drives V8's full collections while a search allocates little
   * else.
   */
  inflatedBytesHint: number[] = [];

  /**
   * `bytes` is the whole block. With `store`, `bytes` may instead be a prefix of the version 4/5 object at
   * key `where` in `store` that holds at least its directory: pages past it are fetched by `load`.
   */
  constructor(
    bytes: Uint8Array,
    private readonly where = 'block',
    private readonly store?: BlockSource,
  ) {
    const v = bytes[3];
    if (
      bytes.length < 8 ||
      bytes[0] !== 0x48 ||
      bytes[1] !== 0x4c ||
      bytes[2] !== 0x42 ||
      v === undefined ||
      v < 0x32 ||
      v > 0x35
    )
      throw new Error(`${where}: not a data block (bad magic)`);
    this.version = (v - 0x30) as 2 | 3 | BlockVersion;
    this.bytesFetched = bytes.length;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pagesAt: number; // where page 0 starts (object offset for v4/v5, body offset for v2/v3)
    let filtersAt = 0;
    let filtersLen = 0;
    let body: Uint8Array | undefined;
    if (this.version >= 4) {
      if (bytes.length < v4FixedBytes)
        throw new Error(
          `${where}: ${bytes.length} bytes, shorter than a version ${this.version} directory's fixed part`,
        );
      const hl = dv.getUint32(4, true);
      const fl = dv.getUint32(8, true);
      const dirEnd = v4FixedBytes + hl + fl;
      if (dirEnd > blockDirectoryBytesMax)
        throw new Error(
          `${where}: directory of ${dirEnd} bytes is over ${blockDirectoryBytesMax} (corrupt block)`,
        );
      if (dirEnd > bytes.length)
        throw new Error(
          `${where}: the directory ends at byte ${dirEnd}, past the ${bytes.length} bytes read`,
        );
      const w = hash64Words(idKey, bytes.subarray(v4FixedBytes, dirEnd));
      if (w[0] !== dv.getUint32(12, true) || w[1] !== dv.getUint32(16, true))
        throw new Error(`${where}: directory checksum mismatch (corrupt block header or filters)`);
      this.header = parseHeader(bytes.subarray(v4FixedBytes, v4FixedBytes + hl), where);
      filtersAt = v4FixedBytes + hl;
      filtersLen = fl;
      pagesAt = dirEnd;
      this.directoryBytes = dirEnd;
      this.dir = bytes.subarray(0, dirEnd);
    } else {
      const hl = dv.getUint32(4, true);
      if (8 + hl > bytes.length) throw new Error(`${where}: header length ${hl} is past the end`);
      this.header = parseHeader(bytes.subarray(8, 8 + hl), where);
      body = bytes.subarray(8 + hl);
      if (hex64(hash64Words(idKey, body)) !== this.header.check)
        throw new Error(`${where}: checksum mismatch (corrupt block)`);
      pagesAt = 0;
    }
    const h = this.header;
    const pages =
      this.version === 2 && Array.isArray(h.sections)
        ? [{ rows: h.rows, filter: 0, sections: h.sections }]
        : this.version > 2 && Array.isArray(h.pages)
          ? h.pages
          : undefined;
    if (!pages) throw new Error(`${where}: the header lists no ${this.version === 2 ? 'sections' : 'pages'}`);
    this.pages = pages;
    let o = pagesAt;
    let row = 0;
    for (const [p, pg] of pages.entries()) {
      if (
        pg === null ||
        typeof pg !== 'object' ||
        !Number.isInteger(pg.rows) ||
        pg.rows < 0 ||
        !Number.isInteger(pg.filter) ||
        pg.filter < 0 ||
        !Array.isArray(pg.sections) ||
        !pg.sections.every((n) => Number.isInteger(n) && n >= 0) ||
        (this.version >= 4 && !(typeof pg.check === 'string' && /^[0-9a-f]{16}$/.test(pg.check)))
      )
        throw new Error(`${where}: page ${p} is malformed in the header`);
      if (p > 0 && pg.sections.length !== pages[0]!.sections.length)
        throw new Error(
          `${where}: page ${p} has ${pg.sections.length} columns, page 0 has ${pages[0]!.sections.length}`,
        );
      if (this.version >= 4) {
        this.filters.push(bytes.subarray(filtersAt, filtersAt + pg.filter));
        filtersAt += pg.filter;
      } else {
        this.filters.push(body!.subarray(o, o + pg.filter));
        o += pg.filter;
      }
      const secs: number[] = [];
      let len = 0;
      for (const n of pg.sections) {
        secs.push(len);
        len += n;
      }
      this.sectionOffset.push(secs);
      this.pageOffset.push(o);
      this.pageLength.push(len);
      this.firstRow.push(row);
      o += len;
      row += pg.rows;
    }
    if (this.version >= 4) {
      if (filtersAt !== pagesAt)
        throw new Error(
          `${where}: page filters add up to ${filtersLen - (pagesAt - filtersAt)} bytes, the directory holds ${filtersLen}`,
        );
      if (!store && o !== bytes.length)
        throw new Error(`${where}: pages end at byte ${o}, the block has ${bytes.length}`);
      for (let p = 0; p < pages.length; p++) {
        const end = this.pageOffset[p]! + this.pageLength[p]!;
        this.data.push(end <= bytes.length ? bytes.subarray(this.pageOffset[p]!, end) : undefined);
        this.checked.push(false);
      }
    } else {
      if (o !== body!.length)
        throw new Error(`${where}: pages add up to ${o} bytes, body has ${body!.length}`);
      for (let p = 0; p < pages.length; p++) {
        this.data.push(body!.subarray(this.pageOffset[p]!, this.pageOffset[p]! + this.pageLength[p]!));
        this.checked.push(true); // the whole body's checksum was checked above
      }
    }
    if (row !== h.rows) throw new Error(`${where}: pages hold ${row} rows, header says ${h.rows}`);
  }

  /**
   * Opens the block at `key`: one range get of its first `blockPrefixBytes` (a second one when a version 4/5
   * directory is longer), or the whole object for versions 2 and 3. Pages are then fetched by `load`.
   */
  static async open(store: BlockSource, key: string, prefixBytes = blockPrefixBytes): Promise<BlockReader> {
    let bytes = await store.get(key, { range: { start: 0, end: prefixBytes - 1 } });
    let fetched = bytes.length;
    let gets = 1;
    if (bytes.length === prefixBytes) {
      // there may be more: a version 4/5 directory longer than the prefix, or an older block (read whole)
      if ((bytes[3] === 0x34 || bytes[3] === 0x35) && bytes.length >= v4FixedBytes) {
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const dirEnd = v4FixedBytes + dv.getUint32(4, true) + dv.getUint32(8, true);
        if (dirEnd > bytes.length && dirEnd <= blockDirectoryBytesMax) {
          const rest = await store.get(key, { range: { start: bytes.length, end: dirEnd - 1 } });
          const all = new Uint8Array(bytes.length + rest.length);
          all.set(bytes);
          all.set(rest, bytes.length);
          bytes = all;
          fetched += rest.length;
          gets++;
        }
      } else {
        bytes = await store.get(key);
        fetched += bytes.length;
        gets++;
      }
    }
    const r = new BlockReader(bytes, key, store);
    r.bytesFetched = fetched;
    r.getsMade = gets;
    return r;
  }

  /**
   * A copy of a version 4/5 block's directory (undefined for older versions): `new BlockReader(dir, key,
   * store)` reads the block again without fetching it (a block's key names immutable bytes).
   */
  directory(): Uint8Array | undefined {
    // Uint8Array's slice: a copy, also when the bytes are a Buffer (whose slice is a view that would keep
    // the whole fetched range alive in the directory cache)
    return this.dir && Uint8Array.prototype.slice.call(this.dir);
  }

  get ncols(): number {
    return this.pages[0]?.sections.length ?? 0;
  }

  /** Whether page p may hold `key` (by its key filter; true when it has none). */
  pageMayHold(p: number, key: number): boolean {
    return filterMayHold(this.filters[p]!, key);
  }

  /** The first row of page p. */
  pageStart(p: number): number {
    return this.firstRow[p]!;
  }

  /** Whether page p's bytes are here (given with the block or loaded). */
  pageLoaded(p: number): boolean {
    return this.data[p] !== undefined;
  }

  /**
   * Fetches the pages `ps` that are not here yet, a run of adjacent pages with one range get (the runs at
   * once). Their checksums are checked when they are first used.
   */
  async load(ps: Iterable<number>): Promise<void> {
    const need = [...new Set(ps)].filter((p) => this.data[p] === undefined).sort((a, b) => a - b);
    if (need.length === 0) return;
    const { store } = this;
    for (const p of need)
      if (!Number.isInteger(p) || p < 0 || p >= this.pages.length)
        throw new Error(`${this.where}: no page ${p} (the block has ${this.pages.length})`);
    if (!store)
      throw new Error(`${this.where}: page ${need[0]} is not in the bytes given and no store was given`);
    const runs: [number, number][] = [];
    for (const p of need) {
      const last = runs[runs.length - 1];
      if (last && last[1] === p - 1) last[1] = p;
      else runs.push([p, p]);
    }
    await Promise.all(
      runs.map(async ([a, b]) => {
        const start = this.pageOffset[a]!;
        const end = this.pageOffset[b]! + this.pageLength[b]!;
        const got =
          end > start ? await store.get(this.where, { range: { start, end: end - 1 } }) : new Uint8Array(0);
        if (got.length !== end - start)
          throw new Error(
            `${this.where}: pages ${a}-${b} are bytes [${start}, ${end}), the store returned ${got.length} of them (truncated block)`,
          );
        this.bytesFetched += got.length;
        this.getsMade++;
        for (let p = a; p <= b; p++)
          this.data[p] = got.subarray(
            this.pageOffset[p]! - start,
            this.pageOffset[p]! - start + this.pageLength[p]!,
          );
      }),
    );
  }

  /** Fetches every page not here yet (a whole-block read through `open`). */
  loadAll(): Promise<void> {
    return this.load(this.pages.keys());
  }

  /** Page p's bytes, checked against its checksum on first use. */
  private pageBytes(p: number): Uint8Array {
    const d = this.data[p];
    if (d === undefined)
      throw new Error(
        p >= 0 && p < this.pages.length
          ? `${this.where}: page ${p} was not loaded (BlockReader.load)`
          : `${this.where}: no page ${p} (the block has ${this.pages.length})`,
      );
    if (!this.checked[p]) {
      if (hex64(hash64Words(idKey, d)) !== this.pages[p]!.check) {
        const first = this.firstRow[p]!;
        throw new Error(
          `${this.where}: page ${p} of ${this.pages.length} (rows ${first}-${first + this.pages[p]!.rows - 1}) fails its checksum: the page is corrupt`,
        );
      }
      this.checked[p] = true;
    }
    return d;
  }

  /** A column's JSON text within page p (decompressed once). */
  pageText(p: number, c: number): string {
    const id = p * 65536 + c;
    let t = this.texts.get(id);
    if (t === undefined) {
      const at = this.sectionOffset[p]?.[c];
      if (at === undefined) throw new Error(`${this.where}: no column ${c} in page ${p}`);
      const z = this.pageBytes(p).subarray(at, at + this.pages[p]!.sections[c]!);
      const hint = this.inflatedBytesHint[c] ?? 0;
      // one byte over the hint: an output that fills its buffer exactly would make zlib allocate another
      const opts =
        hint > 0
          ? {
              maxOutputLength: this.bodyBytesLeft,
              chunkSize: Math.max(inflateChunkBytesMin, Math.min(hint, this.bodyBytesLeft) + 1),
            }
          : { maxOutputLength: this.bodyBytesLeft };
      const raw = this.version >= 5 ? brotliDecompressSync(z, opts) : inflateRawSync(z, opts);
      if (raw.length > hint) this.inflatedBytesHint[c] = raw.length;
      this.bodyBytesLeft -= raw.length;
      // ASCII (a loghub page's columns usually are) reads the same as latin1, which is a copy into a
      // one-byte string: about 12 us for a 99 KB content section against 70-140 us through TextDecoder
      t = isAscii(raw) ? raw.toString('latin1') : dec.decode(raw);
      this.texts.set(id, t);
    }
    return t;
  }

  /** A column's cells within page p. */
  pageColumn(p: number, c: number): Cell[] {
    const id = p * 65536 + c;
    let col = this.cols.get(id);
    if (!col) {
      col = JSON.parse(this.pageText(p, c)) as Cell[];
      if (!Array.isArray(col) || col.length !== this.pages[p]!.rows)
        throw new Error(
          `${this.where}: column ${c} of page ${p} has ${col?.length} cells, the header says ${this.pages[p]!.rows}`,
        );
      this.cols.set(id, col);
    }
    return col;
  }

  /**
   * Where the cells of column c in page p lie in its JSON text (`CellScan`): found by a pass over the text
   * (string cells skipped with indexOf) that goes only as far as a search has asked, so a search that
   * needs a few rows of a page scans up to the last of them and parses those cells only, not the page's
   * columns. When the text turns out not to be the compact JSON array of scalars this module writes, the
   * column is parsed whole (and checked there) instead.
   */
  private cellScan(p: number, c: number): CellScan {
    const id = p * 65536 + c;
    let sc = this.offsets.get(id);
    if (sc === undefined) {
      sc = new CellScan(this.pageText(p, c), this.pages[p]!.rows);
      this.offsets.set(id, sc);
    }
    return sc;
  }

  /** Cell i of column c in page p (that cell parsed alone, unless the column already is). */
  pageCell(p: number, i: number, c: number): Cell {
    const col = this.cols.get(p * 65536 + c);
    if (col) return col[i] ?? null;
    const sc = this.cellScan(p, c);
    // a row past the page's end: the whole text scanned, as the column parse would check it
    if (!sc.reach(i >= 0 && i < sc.n ? i : sc.n - 1)) return this.pageColumn(p, c)[i] ?? null;
    if (!(i >= 0 && i < sc.n)) throw new Error(`${this.where}: no row ${i} in page ${p}`);
    return JSON.parse(sc.t.slice(sc.off[i]!, sc.off[i + 1]! - 1)) as Cell;
  }

  /**
   * The rows of page p whose cell in column c, as JSON text, contains `needle` (ascending). A row whose cell
   * holds a string containing an ASCII text without quotes or backslashes is among them; a few others may
   * be (a needle found across an escape), so callers verify the rows they get.
   */
  pageRowsWith(p: number, c: number, needle: string): number[] {
    const sc = this.cellScan(p, c);
    const { t, n, off } = sc;
    const out: number[] = [];
    let at = t.indexOf(needle);
    let row = 0;
    while (at >= 0) {
      // the row whose text holds position `at`
      for (;;) {
        if (row >= n) break;
        if (!sc.reach(row)) return this.pageRowsParsed(p, c, needle);
        if (off[row + 1]! > at) break;
        row++;
      }
      if (row >= n) break;
      out.push(row);
      row++;
      if (row >= n) break;
      at = t.indexOf(needle, off[row]!);
    }
    return out;
  }

  /** pageRowsWith over the parsed column (a text that is not the compact array this module writes). */
  private pageRowsParsed(p: number, c: number, needle: string): number[] {
    const out: number[] = [];
    const col = this.pageColumn(p, c);
    for (let i = 0; i < col.length; i++) if (JSON.stringify(col[i] ?? null).includes(needle)) out.push(i);
    return out;
  }

  /** Whether the JSON text of cell i of column c in page p contains `needle`. */
  pageCellHas(p: number, i: number, c: number, needle: string): boolean {
    const sc = this.cellScan(p, c);
    if (!(i >= 0 && i < sc.n) || !sc.reach(i))
      return JSON.stringify(this.pageColumn(p, c)[i] ?? null).includes(needle);
    const at = sc.t.indexOf(needle, sc.off[i]!);
    return at >= 0 && at + needle.length <= sc.off[i + 1]! - 1;
  }

  /** Row i of page p (its cells only, unless the page's columns are parsed already). */
  pageRow(p: number, i: number): Row {
    const r: Row = new Array(this.ncols);
    for (let c = 0; c < this.ncols; c++) r[c] = this.pageCell(p, i, c);
    return r;
  }

  /** Every row (every page must be here: given whole, or `loadAll` first). */
  rows(): Row[] {
    const out: Row[] = [];
    for (let p = 0; p < this.pages.length; p++) {
      const cols: Cell[][] = [];
      for (let c = 0; c < this.ncols; c++) cols.push(this.pageColumn(p, c));
      for (let i = 0; i < this.pages[p]!.rows; i++) {
        const r: Row = new Array(this.ncols);
        for (let c = 0; c < this.ncols; c++) r[c] = cols[c]![i] ?? null;
        out.push(r);
      }
    }
    return out;
  }
}

/**
 * Where the `n` cells of a compact JSON array text `t` of scalars (strings, numbers, null, as JSON.stringify
 * writes them) lie, found as far as asked: once `reach(i)` is true, `off[i]` is where cell i starts and
 * `off[i + 1]` one past the separator after it, so cell i is `t.slice(off[i], off[i + 1] - 1)`. `reach`
 * is false when the text up to there (or, for the last cell, the whole text) is not that array (whitespace,
 * nesting, another count of cells): a reader then parses the column whole.
 */
export class CellScan {
  readonly off: number[];
  /** Cells whose bounds are known; -1 once the text was found not to be the compact array. */
  private known = 0;
  private pos = 1;

  constructor(
    readonly t: string,
    readonly n: number,
  ) {
    // a plain array of small integers lives in V8's heap; an Int32Array's 4 KiB of a page would be external
    // memory, which is what drives the full collections during searches (see BlockReader.inflatedBytesHint)
    this.off = new Array<number>(n + 1).fill(0);
    this.off[0] = 1;
    if (t.charCodeAt(0) !== 0x5b)
      this.known = -1; // [
    else if (n === 0 && !(t.length === 2 && t.charCodeAt(1) === 0x5d)) this.known = -1;
  }

  /** Whether cells 0..i are found (scanning on to cell i when they are not yet); false: not the array. */
  reach(i: number): boolean {
    if (i < this.known) return true;
    if (this.known < 0) return false;
    const { t, n, off } = this;
    let pos = this.pos;
    let k = this.known;
    for (; k <= i && k < n; k++) {
      off[k] = pos;
      const ch = t.charCodeAt(pos);
      if (ch === 0x22) {
        // a string: its end is the first quote after it not escaped (preceded by an even run of backslashes)
        let q = pos;
        for (;;) {
          q = t.indexOf('"', q + 1);
          if (q < 0) return this.fail();
          let bs = 0;
          while (t.charCodeAt(q - 1 - bs) === 0x5c) bs++;
          if ((bs & 1) === 0) break;
        }
        pos = q + 1;
      } else {
        if (pos >= t.length || ch === 0x5b || ch === 0x7b || ch === 0x2c || ch === 0x5d) return this.fail(); // [ { , ]
        while (pos < t.length) {
          const d = t.charCodeAt(pos);
          if (d === 0x2c || d === 0x5d) break;
          if (d === 0x22 || d === 0x20 || d === 0x5b || d === 0x7b) return this.fail();
          pos++;
        }
      }
      const sep = t.charCodeAt(pos);
      if (k < n - 1 ? sep !== 0x2c : sep !== 0x5d) return this.fail();
      pos++;
    }
    off[k] = pos;
    this.pos = pos;
    this.known = k;
    // after the last cell the array must end (an empty array was checked when made)
    if (k === n && n > 0 && pos !== t.length) return this.fail();
    return i < k;
  }

  private fail(): false {
    this.known = -1;
    return false;
  }
}

function parseHeader(bytes: Uint8Array, where: string): BlockHeader {
  let h: unknown;
  try {
    h = JSON.parse(dec.decode(bytes));
  } catch (e) {
    throw new Error(`${where}: the block header is not JSON (${(e as Error).message})`);
  }
  if (h === null || typeof h !== 'object' || !Number.isInteger((h as BlockHeader).rows))
    throw new Error(`${where}: the block header is malformed`);
  return h as BlockHeader;
}

export function decodeBlock(bytes: Uint8Array, where = 'block'): { header: BlockHeader; rows: Row[] } {
  const r = new BlockReader(bytes, where);
  return { header: r.header, rows: r.rows() };
}
