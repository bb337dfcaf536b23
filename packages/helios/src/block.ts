/**
 * Data blocks: one chunk of a source's rows, column-major, compressed.
 *
 *   "HLB1" | u32 headerLen | header JSON | deflate(JSON of columns: Cell[][])
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
  const cols: Cell[][] = [];
  for (let c = 0; c < ncols; c++) {
    const col: Cell[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) col[i] = rows[i]![c] ?? null;
    cols.push(col);
  }
  const body = deflateRawSync(enc.encode(JSON.stringify(cols)), { level: 1 });
  const header: BlockHeader = {
    ...meta,
    rows: rows.length,
    ...minMax(rows, ncols),
    check: hex64(hash64Words(idKey, body)),
  };
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + body.length);
  out.set([0x48, 0x4c, 0x42, 0x31]);
  new DataView(out.buffer).setUint32(4, h.length, true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return { bytes: out, header };
}

export function decodeBlock(bytes: Uint8Array, where = 'block'): { header: BlockHeader; rows: Row[] } {
  if (bytes.length < 8 || bytes[0] !== 0x48 || bytes[1] !== 0x4c || bytes[2] !== 0x42 || bytes[3] !== 0x31)
    throw new Error(`${where}: not a data block (bad magic)`);
  const hl = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (8 + hl > bytes.length) throw new Error(`${where}: header length ${hl} is past the end`);
  const header = JSON.parse(dec.decode(bytes.subarray(8, 8 + hl))) as BlockHeader;
  const body = bytes.subarray(8 + hl);
  if (hex64(hash64Words(idKey, body)) !== header.check)
    throw new Error(`${where}: checksum mismatch (corrupt block)`);
  const cols = JSON.parse(
    dec.decode(inflateRawSync(body, { maxOutputLength: blockBodyBytesMax })),
  ) as Cell[][];
  const rows: Row[] = new Array(header.rows);
  for (let i = 0; i < header.rows; i++) {
    const r: Row = new Array(cols.length);
    for (let c = 0; c < cols.length; c++) r[c] = cols[c]![i] ?? null;
    rows[i] = r;
  }
  return { header, rows };
}
