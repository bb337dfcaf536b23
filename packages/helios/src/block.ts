/**
 * Data blocks: one chunk of a source's rows, cut into pages of rows, column-major within a page, compressed.
 *
 *   "HLB3" | u32 headerLen | header JSON | page 0 | page 1 | ...
 *   page = key filter | deflate(JSON of column 0's cells in the page) | deflate(... column 1) | ...
 *
 * The header says where the rows came from (source, byte offsets [from, to)), how many there are, each
 * column's min/max (numbers only) for pruning, each page's row count and section lengths, and a
 * HighwayHash of the compressed body, checked on read. A page's key filter is a Bloom filter of the index
 * keys of its rows (the keys the level-0 leaf holds), so a query the index sent to this block inflates
 * only the pages that may hold its keys, not the whole block. Version 2 blocks ("HLB2": the whole block
 * one page, no filter) are still read.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { hash64Words } from '@strata/highwayhash';
import { deflateSections } from './deflater.js';
import type { Cell, Row } from './formats.js';

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
  /** Version 3: the pages, in row order. */
  pages?: PageInfo[];
  check: string;
}

export interface PageInfo {
  rows: number;
  /** Bytes of the page's key filter (0: none, the page may hold any key). */
  filter: number;
  /** Compressed length of each column's section in the page, in column order. */
  sections: number[];
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
const idKey = new Uint8Array(32).fill(3);

/** Bound on a block's decompressed body, so a hostile block cannot exhaust memory. */
export const blockBodyBytesMax = 256 << 20;

function hex64(w: Uint32Array): string {
  return w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0');
}

/** The block id: a HighwayHash of source, offsets and content, so a re-sent chunk gets the same id. */
export function blockId(source: string, from: number, to: number, content: Uint8Array): string {
  const head = enc.encode(`${source}\u0000${from}\u0000${to}\u0000`);
  const all = new Uint8Array(head.length + content.length);
  all.set(head);
  all.set(content, head.length);
  return hex64(hash64Words(idKey, all));
}

/** Per-column min/max over numeric cells. */
export function minMax(
  rows: Row[],
  ncols: number,
  into: { min: Cell[]; max: Cell[] } = { min: new Array(ncols).fill(null), max: new Array(ncols).fill(null) },
): { min: Cell[]; max: Cell[] } {
  const { min, max } = into;
  for (const r of rows)
    for (let c = 0; c < ncols; c++) {
      const v = r[c];
      if (typeof v !== 'number') continue;
      const lo = min[c];
      const hi = max[c];
      if (lo === null || lo === undefined || v < (lo as number)) min[c] = v;
      if (hi === null || hi === undefined || v > (hi as number)) max[c] = v;
    }
  return { min, max };
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
   * The distinct index keys of some rows (unsorted): each page gets a key filter of its rows' keys.
   * `columnsJson` is each column's cells in the page as JSON text (UTF-8), the text its section deflates.
   */
  pageKeys?: (rows: Row[], columnsJson: Uint8Array[]) => Float64Array;
}

export interface EncodedBlock {
  bytes: Uint8Array;
  header: BlockHeader;
  /** Per page, the keys its filter holds (their union is the block's leaf). */
  pageKeys: Float64Array[];
}

/** A block before compression: per page its filter, then each column's JSON text (to be deflated). */
interface BlockPlan {
  meta: BlockMeta;
  rows: number;
  min: Cell[];
  max: Cell[];
  ncols: number;
  filters: Uint8Array[];
  texts: Uint8Array[];
  pageRows: number[];
  pageKeys: Float64Array[];
}

/**
 * A block's rows: an array, or rows made a page at a time (`slice`), so that a page's rows are garbage
 * before the next page's are made (they die young instead of surviving a whole chunk).
 */
export interface RowSource {
  length: number;
  slice(start: number, end: number): Row[];
}

function planBlock(meta: BlockMeta, rows: RowSource, ncols: number, opts: EncodeOptions): BlockPlan {
  const per = Math.max(1, opts.pageRows ?? blockPageRows);
  const pageCount = Math.max(1, Math.ceil(rows.length / per)); // an empty block is one empty page
  // No reference to the rows stays in the plan: they can be collected while the sections are deflated.
  const plan: BlockPlan = {
    meta,
    rows: rows.length,
    min: new Array(ncols).fill(null),
    max: new Array(ncols).fill(null),
    ncols,
    filters: [],
    texts: [],
    pageRows: [],
    pageKeys: [],
  };
  for (let p = 0; p < pageCount; p++) {
    const page = rows.slice(p * per, (p + 1) * per);
    plan.pageRows.push(page.length);
    minMax(page, ncols, plan);
    const texts: Uint8Array[] = [];
    for (let c = 0; c < ncols; c++) {
      const col: Cell[] = new Array(page.length);
      for (let i = 0; i < page.length; i++) col[i] = page[i]![c] ?? null;
      texts.push(enc.encode(JSON.stringify(col)));
    }
    plan.texts.push(...texts);
    if (opts.pageKeys) {
      const keys = opts.pageKeys(page, texts);
      plan.pageKeys.push(keys);
      plan.filters.push(buildKeyFilter(keys));
    } else plan.filters.push(new Uint8Array(0));
  }
  return plan;
}

/** The block's bytes from its plan and its sections deflated (in plan order). */
function packBlock(plan: BlockPlan, sections: Uint8Array[]): EncodedBlock {
  const { ncols } = plan;
  const pages: PageInfo[] = [];
  let bodyLen = 0;
  for (let p = 0; p < plan.pageRows.length; p++) {
    const lens = sections.slice(p * ncols, (p + 1) * ncols).map((z) => z.length);
    pages.push({ rows: plan.pageRows[p]!, filter: plan.filters[p]!.length, sections: lens });
    bodyLen += plan.filters[p]!.length;
    for (const n of lens) bodyLen += n;
  }
  const body = new Uint8Array(bodyLen);
  let o = 0;
  for (let p = 0; p < pages.length; p++) {
    body.set(plan.filters[p]!, o);
    o += plan.filters[p]!.length;
    for (let c = 0; c < ncols; c++) {
      const z = sections[p * ncols + c]!;
      body.set(z, o);
      o += z.length;
    }
  }
  const header: BlockHeader = {
    ...plan.meta,
    rows: plan.rows,
    min: plan.min,
    max: plan.max,
    pages,
    check: hex64(hash64Words(idKey, body)),
  };
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + body.length);
  out.set([0x48, 0x4c, 0x42, 0x33]);
  new DataView(out.buffer).setUint32(4, h.length, true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return { bytes: out, header, pageKeys: plan.pageKeys };
}

/** deflate level 1: a 4 MiB chunk's sections compress 4-5x at a fraction of the default level's CPU. */
const deflateOptions = { level: 1 };

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
  const plan = planBlock(meta, rows, ncols, opts);
  return packBlock(
    plan,
    plan.texts.map((t) => deflateRawSync(t, deflateOptions)),
  );
}

/**
 * `encodeBlock` with the deflate of every section on a worker thread: rows, keys and JSON are done
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
  return deflateSections(plan.texts, deflateOptions.level).then((z) => packBlock(plan, z));
}

/**
 * Reads a block one page and one column at a time: a query inflates and parses only the pages its keys may
 * be in and the columns it tests, and can look for a needle in a column's text before parsing it at all.
 */
export class BlockReader {
  readonly header: BlockHeader;
  readonly pages: PageInfo[];
  private readonly body: Uint8Array;
  /** Per page: the body offset of its filter, then of each column section. */
  private readonly offsets: number[][] = [];
  private readonly firstRow: number[] = [];
  private readonly texts = new Map<number, string>();
  private readonly cols = new Map<number, Cell[]>();
  private bodyBytesLeft = blockBodyBytesMax;

  constructor(
    bytes: Uint8Array,
    private readonly where = 'block',
  ) {
    const v = bytes[3];
    if (
      bytes.length < 8 ||
      bytes[0] !== 0x48 ||
      bytes[1] !== 0x4c ||
      bytes[2] !== 0x42 ||
      (v !== 0x32 && v !== 0x33)
    )
      throw new Error(`${where}: not a data block (bad magic)`);
    const hl = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
    if (8 + hl > bytes.length) throw new Error(`${where}: header length ${hl} is past the end`);
    this.header = JSON.parse(dec.decode(bytes.subarray(8, 8 + hl))) as BlockHeader;
    this.body = bytes.subarray(8 + hl);
    if (hex64(hash64Words(idKey, this.body)) !== this.header.check)
      throw new Error(`${where}: checksum mismatch (corrupt block)`);
    const h = this.header;
    const pages =
      v === 0x32 && Array.isArray(h.sections)
        ? [{ rows: h.rows, filter: 0, sections: h.sections }]
        : Array.isArray(h.pages)
          ? h.pages
          : undefined;
    if (!pages) throw new Error(`${where}: the header lists no ${v === 0x32 ? 'sections' : 'pages'}`);
    this.pages = pages;
    let o = 0;
    let row = 0;
    for (const [p, pg] of pages.entries()) {
      if (!Number.isInteger(pg.rows) || pg.rows < 0 || !Array.isArray(pg.sections) || !(pg.filter >= 0))
        throw new Error(`${where}: page ${p} is malformed in the header`);
      if (p > 0 && pg.sections.length !== pages[0]!.sections.length)
        throw new Error(
          `${where}: page ${p} has ${pg.sections.length} columns, page 0 has ${pages[0]!.sections.length}`,
        );
      const offs = [o];
      o += pg.filter;
      for (const n of pg.sections) {
        offs.push(o);
        o += n;
      }
      this.offsets.push(offs);
      this.firstRow.push(row);
      row += pg.rows;
    }
    if (o !== this.body.length)
      throw new Error(`${where}: pages add up to ${o} bytes, body has ${this.body.length}`);
    if (row !== h.rows) throw new Error(`${where}: pages hold ${row} rows, header says ${h.rows}`);
  }

  get ncols(): number {
    return this.pages[0]?.sections.length ?? 0;
  }

  /** Whether page p may hold `key` (by its key filter; true when it has none). */
  pageMayHold(p: number, key: number): boolean {
    const pg = this.pages[p]!;
    const o = this.offsets[p]![0]!;
    return filterMayHold(this.body.subarray(o, o + pg.filter), key);
  }

  /** The first row of page p. */
  pageStart(p: number): number {
    return this.firstRow[p]!;
  }

  /** A column's JSON text within page p (inflated once). */
  pageText(p: number, c: number): string {
    const id = p * 65536 + c;
    let t = this.texts.get(id);
    if (t === undefined) {
      const start = this.offsets[p]?.[c + 1];
      if (start === undefined) throw new Error(`${this.where}: no column ${c} in page ${p}`);
      const z = this.body.subarray(start, start + this.pages[p]!.sections[c]!);
      const raw = inflateRawSync(z, { maxOutputLength: this.bodyBytesLeft });
      this.bodyBytesLeft -= raw.length;
      t = dec.decode(raw);
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

  /** Row i of page p (parses every column of the page). */
  pageRow(p: number, i: number): Row {
    const r: Row = new Array(this.ncols);
    for (let c = 0; c < this.ncols; c++) r[c] = this.pageColumn(p, c)[i] ?? null;
    return r;
  }

  rows(): Row[] {
    const out: Row[] = [];
    for (let p = 0; p < this.pages.length; p++)
      for (let i = 0; i < this.pages[p]!.rows; i++) out.push(this.pageRow(p, i));
    return out;
  }
}

export function decodeBlock(bytes: Uint8Array, where = 'block'): { header: BlockHeader; rows: Row[] } {
  const r = new BlockReader(bytes, where);
  return { header: r.header, rows: r.rows() };
}
