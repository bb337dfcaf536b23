/**
 * Data blocks: one chunk of a source's rows, column-major, compressed.
 *
 *   "HLB2" | u32 headerLen | header JSON | deflate(JSON of column 0) | deflate(JSON of column 1) | ...
 *
 * The header says where the rows came from (source, byte offsets [from, to)), how many there are, each
 * column's min/max (numbers only) for pruning, and a HighwayHash of the compressed body, checked on read.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { hash64Words } from '@strata/highwayhash';
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
  /** Compressed length of each column's section, in column order. */
  sections: number[];
  check: string;
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
export function minMax(rows: Row[], ncols: number): { min: Cell[]; max: Cell[] } {
  const min: Cell[] = new Array(ncols).fill(null);
  const max: Cell[] = new Array(ncols).fill(null);
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

export function encodeBlock(
  meta: { id: string; source: string; from: number; to: number; rawBytes: number },
  rows: Row[],
  ncols: number,
): { bytes: Uint8Array; header: BlockHeader } {
  const parts: Uint8Array[] = [];
  const sections: number[] = [];
  for (let c = 0; c < ncols; c++) {
    const col: Cell[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) col[i] = rows[i]![c] ?? null;
    const z = deflateRawSync(enc.encode(JSON.stringify(col)), { level: 1 });
    parts.push(z);
    sections.push(z.length);
  }
  let bodyLen = 0;
  for (const z of parts) bodyLen += z.length;
  const body = new Uint8Array(bodyLen);
  let o = 0;
  for (const z of parts) {
    body.set(z, o);
    o += z.length;
  }
  const header: BlockHeader = {
    ...meta,
    rows: rows.length,
    ...minMax(rows, ncols),
    sections,
    check: hex64(hash64Words(idKey, body)),
  };
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + body.length);
  out.set([0x48, 0x4c, 0x42, 0x32]);
  new DataView(out.buffer).setUint32(4, h.length, true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return { bytes: out, header };
}

/**
 * Reads a block one column at a time: a query inflates and parses only the columns it tests, and can
 * look for a needle in a column's text before parsing it at all.
 */
export class BlockReader {
  readonly header: BlockHeader;
  private readonly body: Uint8Array;
  private readonly starts: number[] = [];
  private readonly texts = new Map<number, string>();
  private readonly cols = new Map<number, Cell[]>();
  private bodyBytesLeft = blockBodyBytesMax;

  constructor(
    bytes: Uint8Array,
    private readonly where = 'block',
  ) {
    if (bytes.length < 8 || bytes[0] !== 0x48 || bytes[1] !== 0x4c || bytes[2] !== 0x42 || bytes[3] !== 0x32)
      throw new Error(`${where}: not a data block (bad magic)`);
    const hl = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
    if (8 + hl > bytes.length) throw new Error(`${where}: header length ${hl} is past the end`);
    this.header = JSON.parse(dec.decode(bytes.subarray(8, 8 + hl))) as BlockHeader;
    this.body = bytes.subarray(8 + hl);
    if (hex64(hash64Words(idKey, this.body)) !== this.header.check)
      throw new Error(`${where}: checksum mismatch (corrupt block)`);
    let o = 0;
    for (const n of this.header.sections) {
      this.starts.push(o);
      o += n;
    }
    if (o !== this.body.length)
      throw new Error(`${where}: sections add up to ${o} bytes, body has ${this.body.length}`);
  }

  get ncols(): number {
    return this.header.sections.length;
  }

  /** A column's JSON text (inflated once). */
  text(c: number): string {
    let t = this.texts.get(c);
    if (t === undefined) {
      const start = this.starts[c];
      if (start === undefined) throw new Error(`${this.where}: no column ${c}`);
      const z = this.body.subarray(start, start + this.header.sections[c]!);
      const raw = inflateRawSync(z, { maxOutputLength: this.bodyBytesLeft });
      this.bodyBytesLeft -= raw.length;
      t = dec.decode(raw);
      this.texts.set(c, t);
    }
    return t;
  }

  column(c: number): Cell[] {
    let col = this.cols.get(c);
    if (!col) {
      col = JSON.parse(this.text(c)) as Cell[];
      if (!Array.isArray(col) || col.length !== this.header.rows)
        throw new Error(
          `${this.where}: column ${c} has ${col?.length} cells, header says ${this.header.rows}`,
        );
      this.cols.set(c, col);
    }
    return col;
  }

  /** Row i (parses every column). */
  row(i: number): Row {
    const r: Row = new Array(this.ncols);
    for (let c = 0; c < this.ncols; c++) r[c] = this.column(c)[i] ?? null;
    return r;
  }

  rows(): Row[] {
    const out: Row[] = new Array(this.header.rows);
    for (let i = 0; i < this.header.rows; i++) out[i] = this.row(i);
    return out;
  }
}

export function decodeBlock(bytes: Uint8Array, where = 'block'): { header: BlockHeader; rows: Row[] } {
  const r = new BlockReader(bytes, where);
  return { header: r.header, rows: r.rows() };
}
