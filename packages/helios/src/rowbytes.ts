/**
 * Loghub lines parsed from a chunk's bytes, for chunks that are all ASCII: the template matched byte by
 * byte, the string columns written straight as their sections' JSON text, integer and `Date` + `Time`
 * cells read from their digits. No string is made for a line or a field (making the chunk a string,
 * the template's regex, its match array and cells, `JSON.stringify` of the string columns and the GC
 * they caused took about 2.0 of the main thread's 3.0 CPU s in a profile of a 2M-line HDFS ingest). The
 * result is exactly what `RowParser` and `JSON.stringify` give: a line the byte matcher does not take for
 * certain goes through `RowParser` as a string. Since 2026-12-04 a page's loop runs in WebAssembly when the
 * module is built (`pageWasm`, assembly/rowbytes.ts: the same walk, the same texts and cells); the
 * JavaScript loop (`pageJs`) stays the reference and the fallback.
 *
 * Why the greedy walk gives the regex's own match: `loghubRegex` compiles a template to a sequence of
 * literal characters, `\s+` (a run of spaces in the template), fields `\S*` or `[^c]*` (each followed by
 * a literal) and a last field `.*`, anchored at both ends. A backtracking regex tries each quantifier's
 * longest run first and returns the first path that succeeds, so when the path of longest runs succeeds,
 * it is the match. The walk takes exactly that path and gives up (the line goes to the regex) at the first
 * step that fails, where the regex would backtrack. One backtrack is taken as the regex takes it: a field
 * `[^c]*` followed by blanks and then c (`<Level> - `) always fails its longest run (the run stops at c,
 * leaving `\s+` no blank), and its first field that passes is that run less its last byte, a blank.
 * Templates with a field right after another field (a lazy `\S*?`) or non-ASCII text are left to the regex.
 */
import type { StreamDef } from './ddl.js';
import {
  type Cell,
  columnSources,
  dateTimeCell,
  hdfsDateTimeBytes,
  lineBytesMax,
  type RowParser,
  toCell,
} from './formats.js';
import { LazyModule, type ModuleExports } from './wasm.js';

const opLiteral = 0;
const opSpaces = 1;
const opNonSpace = 2;
const opNotChar = 3;
const opRest = 4;
/** `\S*` and the `\s+` after it, in one step (a field before blanks: one dispatch instead of two). */
const opNonSpaceSpaces = 5;
/** `[^c]*` and the literal c after it, in one step. */
const opNotCharChar = 6;
/** `[^c]*`, then `\s+` and the literal c (a template's `<Level> - `), in one step. */
const opNotCharBlanksChar = 7;

/** `\s` in ASCII: tab, line feed, vertical tab, form feed, carriage return, space. */
const classSpace = 1;
/** A byte `JSON.stringify` escapes in a string: controls, `"` and `\`. */
const classEscape = 2;
/** A line terminator, which `.` does not match: line feed and carriage return. */
const classTerminator = 4;
const byteClass = Uint8Array.from({ length: 256 }, (_, b) => {
  let k = 0;
  if ((b >= 9 && b <= 13) || b === 32) k |= classSpace;
  if (b < 0x20 || b === 0x22 || b === 0x5c) k |= classEscape;
  if (b === 10 || b === 13) k |= classTerminator;
  return k;
});

/**
 * The bytes of w (four bytes of a chunk read little-endian, each below 0x80) that `JSON.stringify` escapes,
 * controls, `"` and `\`, as their top bits; 0 when none. A byte below n sets its top bit in w - n * 0x01010101
 * when no byte below it did (no borrow reaches it), so the test is exact for "any" (the scans ask no more).
 */
function specialBytes(w: number): number {
  return (
    ((w - 0x20202020) | ((w ^ 0x22222222) - 0x01010101) | ((w ^ 0x5c5c5c5c) - 0x01010101)) & ~w & 0x80808080
  );
}

/**
 * The bytes of w (four ASCII bytes of a chunk, little-endian) that end a field `\S*` or add to its class:
 * blanks and controls (below 0x21), `"` and `\`, as their top bits; 0 when none (exact for "any", as in
 * `specialBytes`).
 */
function fieldStopBytes(w: number): number {
  return (
    ((w - 0x21212121) | ((w ^ 0x22222222) - 0x01010101) | ((w ^ 0x5c5c5c5c) - 0x01010101)) & ~w & 0x80808080
  );
}

/** The template as steps (op, argument): a literal's byte, a field's number (and `[^c]*`'s c above bit 16). */
function compileTemplate(template: string): { ops: Int32Array; names: string[] } | undefined {
  const parts = template.split(/(<[A-Za-z_][A-Za-z0-9_]*>)/).filter((x) => x !== '');
  const ops: number[] = [];
  const names: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const m = /^<([A-Za-z_][A-Za-z0-9_]*)>$/.exec(part);
    if (!m) {
      for (let j = 0; j < part.length; ) {
        const ch = part.charCodeAt(j);
        if (ch > 127) return undefined;
        if (ch === 32) {
          while (part.charCodeAt(j) === 32) j++;
          ops.push(opSpaces, 0);
        } else {
          ops.push(opLiteral, ch);
          j++;
        }
      }
      continue;
    }
    const f = names.length;
    names.push(m[1]!);
    const next = parts[i + 1];
    if (next === undefined) ops.push(opRest, f);
    else if (/^<.*>$/.test(next))
      return undefined; // a lazy field: left to the regex
    else {
      const c = next.trim()[0];
      if (c === undefined) ops.push(opNonSpace, f);
      else if (c.charCodeAt(0) > 127) return undefined;
      else ops.push(opNotChar, f | (c.charCodeAt(0) << 16));
    }
  }
  // a field and the step after it that its run's end already half decided, fused
  const fused: number[] = [];
  for (let k = 0; k < ops.length; k += 2) {
    const [op, arg, next, nextArg] = [ops[k]!, ops[k + 1]!, ops[k + 2], ops[k + 3]];
    if (op === opNonSpace && next === opSpaces) {
      fused.push(opNonSpaceSpaces, arg);
      k += 2;
    } else if (op === opNotChar && next === opLiteral && nextArg === arg >>> 16) {
      fused.push(opNotCharChar, arg);
      k += 2;
    } else if (
      op === opNotChar &&
      next === opSpaces &&
      ops[k + 4] === opLiteral &&
      ops[k + 5] === arg >>> 16
    ) {
      fused.push(opNotCharBlanksChar, arg);
      k += 4;
    } else fused.push(op, arg);
  }
  return { ops: Int32Array.from(fused), names };
}

/** How a column's cells are made: 0 JSON from a field's bytes, 1 INT of a field, 2 Date + Time, 3 any other (strings). */
const kindJson = 0;
const kindInt = 1;
const kindDateTime = 2;
const kindOther = 3;

/**
 * The page loop in WebAssembly (assembly/rowbytes.ts, built to build/rowbytes.wasm by the package's
 * `build:wasm` script): the matcher, the string columns' JSON text, the integer columns' digits and the
 * HDFS date-time columns' values, a
 * page's lines in one call (the lines it does not take are handed back one at a time, as below). The
 * JavaScript loop below stays the reference and the fallback (no module, or a page too large for it).
 */
interface PageExports extends ModuleExports {
  regionsFrom(): number;
  pageLines(frame: number, r0: number): number;
}

/** The module's frame (u32 words, see assembly/rowbytes.ts). */
const fOps = 0;
const fOpCount = 1;
const fText = 2;
const fEnds = 3;
const fBias = 4;
const fLines = 5;
const fFields = 6;
const fFieldCount = 7;
const fJson = 8;
const fJsonCount = 9;
const fInts = 10;
const fIntCount = 11;
const fLineBytesMax = 12;
const fClasses = 13;
const fStop = 14;
const fDates = 15;
const fDateCount = 16;
const frameBytes = 128;
/** Why `pageLines` stopped short of the page's end: a line to `RowParser`, or a text out of room. */
const stopNoMatch = 1;
const wasmPageBytes = 65536;
/** Pages of more bytes take the JavaScript loop (the module holds a page and a text a string column). */
export const wasmPageBytesMax = 16 << 20;
/**
 * Pages of at most this many bytes have room for every string cell escaped (the module's memory then
 * holds up to 6 times a page a string column); a larger page whose escapes outgrow its room takes the
 * JavaScript loop.
 */
const wasmEscapedPageBytesMax = 1 << 20;

const pages = new LazyModule<PageExports>('rowbytes.wasm');

/** Which loop `ByteRowParser.page` uses: 'wasm', or 'js' (no module, or switched off). */
export function wasmPageEngine(): 'wasm' | 'js' {
  return pages.get() ? 'wasm' : 'js';
}

/** Switches the WebAssembly page loop off or back on (when the module loads); for tests. */
export function useWasmPages(on: boolean): void {
  pages.use(on);
}

const align8 = (n: number) => (n + 7) & ~7;
const enc = new TextEncoder();

/** A page's JSON text of one column, grown as needed and reused for every page. */
class JsonColumn {
  buf = Buffer.allocUnsafe(1 << 16);
  view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  o = 0;
  /** `buf.length`, kept as a number: a Buffer's length read on every cell was 8% of the page loop. */
  cap = this.buf.length;

  room(bytes: number): void {
    if (this.o + bytes <= this.cap) return;
    const b = Buffer.allocUnsafe(Math.max(this.cap * 2, this.o + bytes));
    this.buf.copy(b, 0, 0, this.o);
    this.buf = b;
    this.cap = b.length;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Appends `JSON.stringify(v)` (v a string or null). */
  cell(v: Cell): void {
    if (v === null) {
      this.room(4);
      this.o += this.buf.write('null', this.o, 'latin1');
      return;
    }
    const j = JSON.stringify(v);
    this.room(j.length * 3);
    this.o += this.buf.write(j, this.o, 'utf8');
  }
}

/** Parses the lines of ASCII chunks of a loghub stream into pages (see the file's comment). */
export class ByteRowParser {
  private readonly ops: Int32Array;
  private readonly fieldCount: number;
  private readonly fieldStart: Int32Array;
  private readonly fieldEnd: Int32Array;
  private readonly fieldClasses: Int32Array;
  /** Per column: how its cells are made, and from which field(s). */
  private readonly kinds: number[];
  private readonly fieldA: number[];
  private readonly fieldB: number[];
  private readonly json: (JsonColumn | undefined)[];
  /** One row's cells from `RowParser`, for the lines the matcher leaves to it. */
  private readonly scratch: Cell[][];
  /**
   * The column that alone takes the template's last field `.*` when it is a string column (else -1), and
   * that field: the matcher then leaves the field's bytes unread and the page loop checks them as it copies
   * them (one pass over a line's longest field instead of two).
   */
  private readonly restColumn: number;
  private readonly restField: number;
  /** The columns the module writes: JSON texts of a field's strings, and INT values of a field's digits. */
  private readonly jsonCols: number[];
  private readonly intCols: number[];
  private readonly dateCols: number[];
  /** Per line of the page: whether it went to `RowParser` (the module's loop). */
  private strings = new Uint8Array(0);

  private constructor(
    private readonly def: StreamDef,
    private readonly parser: RowParser,
    t: { ops: Int32Array; names: string[] },
  ) {
    this.ops = t.ops;
    this.fieldCount = t.names.length;
    this.fieldStart = new Int32Array(this.fieldCount);
    this.fieldEnd = new Int32Array(this.fieldCount);
    this.fieldClasses = new Int32Array(this.fieldCount);
    const sources = columnSources(def.columns, t.names);
    this.kinds = [];
    this.fieldA = [];
    this.fieldB = [];
    this.json = [];
    def.columns.forEach((c, i) => {
      const src = sources[i]!;
      let kind = kindOther;
      let a = -1;
      let b = -1;
      if (src !== null && 'field' in src) {
        a = t.names.indexOf(src.field);
        if (c.type === 'STRING' || c.type === 'TEXT') kind = kindJson;
        else if (c.type === 'INT') kind = kindInt;
      } else if (src !== null) {
        kind = kindDateTime;
        a = t.names.indexOf(src.date);
        b = t.names.indexOf(src.time);
      }
      this.kinds.push(kind);
      this.fieldA.push(a);
      this.fieldB.push(b);
      this.json.push(kind === kindJson ? new JsonColumn() : undefined);
    });
    this.scratch = def.columns.map(() => [null]);
    let rest = -1;
    for (let k = 0; k < t.ops.length; k += 2) if (t.ops[k] === opRest) rest = t.ops[k + 1]!;
    const takers = this.kinds
      .map((_, c) => c)
      .filter((c) => rest >= 0 && (this.fieldA[c] === rest || this.fieldB[c] === rest));
    const only = takers.length === 1 && this.kinds[takers[0]!] === kindJson;
    this.restColumn = only ? takers[0]! : -1;
    this.restField = only ? rest : -1;
    this.jsonCols = this.kinds.flatMap((k, c) => (k === kindJson ? [c] : []));
    this.intCols = this.kinds.flatMap((k, c) => (k === kindInt ? [c] : []));
    this.dateCols = this.kinds.flatMap((k, c) => (k === kindDateTime ? [c] : []));
  }

  /** The byte parser of a stream's format, or undefined (not a loghub template the matcher takes). */
  static for(def: StreamDef, parser: RowParser): ByteRowParser | undefined {
    if (def.format.kind !== 'loghub') return undefined;
    const t = compileTemplate(def.format.template);
    return t ? new ByteRowParser(def, parser, t) : undefined;
  }

  /**
   * Matches b[s, e) (one line, cut and without its CR) against the template along the path of longest
   * runs; fills the fields' ranges and byte classes. False where that path fails (the regex decides).
   */
  private match(b: Uint8Array, dv: DataView, s: number, e: number): boolean {
    const ops = this.ops;
    const fs = this.fieldStart;
    const fe = this.fieldEnd;
    const fc = this.fieldClasses;
    let p = s;
    for (let k = 0; k < ops.length; k += 2) {
      const arg = ops[k + 1]!;
      switch (ops[k]) {
        case opLiteral:
          if (p < e && b[p] === arg) p++;
          else return false;
          break;
        case opSpaces:
          if (p >= e || (byteClass[b[p]!]! & classSpace) === 0) return false;
          p++;
          while (p < e && (byteClass[b[p]!]! & classSpace) !== 0) p++;
          break;
        case opNonSpace:
        case opNonSpaceSpaces: {
          const p0 = p;
          let cls = 0;
          // Four bytes at a time while none is a blank, a control, `"` or `\` (bytes that add nothing to
          // the field's class), then byte by byte: the byte loop was a quarter of this function (dates,
          // times, pids and levels are runs of 3-6 such bytes).
          while (p + 4 <= e && fieldStopBytes(dv.getUint32(p, true)) === 0) p += 4;
          while (p < e) {
            const k2 = byteClass[b[p]!]!;
            if ((k2 & classSpace) !== 0) break;
            cls |= k2;
            p++;
          }
          fs[arg] = p0;
          fe[arg] = p;
          fc[arg] = cls;
          if (ops[k] === opNonSpaceSpaces) {
            // the run stopped at a blank or the end: the blanks, at least one
            if (p >= e) return false;
            p++;
            while (p < e && (byteClass[b[p]!]! & classSpace) !== 0) p++;
          }
          break;
        }
        case opNotChar:
        case opNotCharChar:
        case opNotCharBlanksChar: {
          const f = arg & 0xffff;
          const ch = arg >>> 16;
          const p0 = p;
          let cls = 0;
          // Four bytes at a time while none is c, a control, `"` or `\` (then nothing adds to the field's
          // class that the page loop reads: only escapes; exact as in opRest below, c being ASCII too), then
          // byte by byte from the first word that has one (a component before its `:`: 6% of page()).
          const cw = ch * 0x01010101;
          while (p + 4 <= e) {
            const w = dv.getUint32(p, true);
            const q = w ^ 0x22222222;
            const x = w ^ 0x5c5c5c5c;
            const y = w ^ cw;
            if (((w - 0x20202020) | (q - 0x01010101) | (x - 0x01010101) | (y - 0x01010101)) & ~w & 0x80808080)
              break;
            p += 4;
          }
          while (p < e) {
            const x = b[p]!;
            if (x === ch) break;
            cls |= byteClass[x]!;
            p++;
          }
          fs[f] = p0;
          fe[f] = p;
          fc[f] = cls;
          if (ops[k] === opNotCharChar) {
            // the run stopped at c or the end: c
            if (p >= e) return false;
            p++;
          } else if (ops[k] === opNotCharBlanksChar) {
            // The run stopped at c (c is not a blank) or the end. The regex's longest field leaves \s+ no
            // blank before c, so it backtracks: the first field it then tries that passes is the run less
            // its last byte, when that byte is a blank (\s+ takes it alone; the field keeps any blanks
            // before it); a shorter field leaves \s+ at the same c, so nothing after it differs.
            if (p >= e || p === p0 || (byteClass[b[p - 1]!]! & classSpace) === 0) return false;
            fe[f] = p - 1;
            p++;
          }
          break;
        }
        default: {
          if (arg === this.restField) {
            // checked by `copyRest` as the page loop copies it
            fs[arg] = p;
            fe[arg] = e;
            fc[arg] = 0;
            p = e;
            break;
          }
          // opRest: `.*` then the end, so no line terminator in it. Eight, then four bytes at a time while
          // none is a control, `"` or `\` (`specialBytes`), then byte by byte from the first word that has
          // one. (Eight at a time: the matcher and the page loop 8% faster.)
          const p0 = p;
          let cls = 0;
          while (
            p + 8 <= e &&
            (specialBytes(dv.getUint32(p, true)) | specialBytes(dv.getUint32(p + 4, true))) === 0
          )
            p += 8;
          while (p + 4 <= e && specialBytes(dv.getUint32(p, true)) === 0) p += 4;
          while (p < e) cls |= byteClass[b[p++]!]!;
          if ((cls & classTerminator) !== 0) return false;
          fs[arg] = p0;
          fe[arg] = p;
          fc[arg] = cls;
        }
      }
    }
    return p === e;
  }

  /**
   * Appends the last field of the line just matched (`restField`) to its column's JSON text as
   * `JSON.stringify` writes it, checking its bytes as they are copied, eight at a time while none is a
   * control, `"` or `\` (as `match` checks a field `.*` it reads itself: every byte is below 0x80). False
   * when the field holds a line terminator (the regex's `.*` does not match it: the line goes to
   * `RowParser`), with nothing appended. Row r > 0 is preceded by a comma.
   */
  private copyRest(b: Buffer, u8: Uint8Array, dv: DataView, r: number): boolean {
    const f = this.restField;
    const j = this.json[this.restColumn]!;
    const s0 = this.fieldStart[f]!;
    const len = this.fieldEnd[f]! - s0;
    j.room(len + 3);
    const out = j.buf;
    const ov = j.view;
    let o = j.o;
    if (r > 0) out[o++] = 0x2c; // ,
    out[o++] = 0x22; // "
    let k = 0;
    for (; k + 8 <= len; k += 8) {
      const w = dv.getUint32(s0 + k, true);
      const v = dv.getUint32(s0 + k + 4, true);
      if ((specialBytes(w) | specialBytes(v)) !== 0) break;
      ov.setUint32(o + k, w, true);
      ov.setUint32(o + k + 4, v, true);
    }
    if (k + 4 <= len) {
      const w = dv.getUint32(s0 + k, true);
      if (specialBytes(w) === 0) {
        ov.setUint32(o + k, w, true);
        k += 4;
      }
    }
    for (; k < len; k++) {
      const x = u8[s0 + k]!;
      if ((byteClass[x]! & classEscape) !== 0) break;
      out[o + k] = x;
    }
    if (k === len) {
      o += len;
      out[o++] = 0x22;
      j.o = o;
      return true;
    }
    // a control, `"` or `\` at k: a line terminator from there fails the line, else the cell has escapes
    let cls = 0;
    for (let q = s0 + k; q < s0 + len; q++) cls |= byteClass[u8[q]!]!;
    if ((cls & classTerminator) !== 0) return false;
    if (r > 0) out[j.o++] = 0x2c;
    j.cell(b.toString('latin1', s0, s0 + len));
    return true;
  }

  /**
   * The page of lines [a, a + n) of an ASCII chunk `b` whose line i ends at ends[i] (its newline, or the
   * chunk's end): the cells of columns made from numbers or by `RowParser`, and for each column whose cells
   * are strings of a field (or null) its JSON text in `json[c]` (exactly `JSON.stringify` of its cells) with
   * an empty array for its cells. `line(i)` is line i as a string (for the lines left to `RowParser`).
   */
  page(
    b: Buffer,
    ends: Uint32Array,
    a: number,
    n: number,
    json: (Uint8Array | undefined)[],
    line: (i: number) => string,
  ): Cell[][] {
    const wasm = n > 0 ? pages.get() : undefined;
    return (wasm && this.pageWasm(wasm, b, ends, a, n, json, line)) ?? this.pageJs(b, ends, a, n, json, line);
  }

  /**
   * `page` through the module, or undefined when the page must take the JavaScript loop (too large, or a
   * text out of room). Its JSON texts are views of the module's memory, which every parser shares: valid
   * until any parser's next page (`planBlock` copies a page's texts before it asks for the next).
   */
  private pageWasm(
    wasm: PageExports,
    b: Buffer,
    ends: Uint32Array,
    a: number,
    n: number,
    json: (Uint8Array | undefined)[],
    line: (i: number) => string,
  ): Cell[][] | undefined {
    const from = a === 0 ? 0 : ends[a - 1]! + 1;
    const to = ends[a + n - 1]!;
    const bytes = to - from;
    if (bytes > wasmPageBytesMax) return undefined;
    const ncols = this.kinds.length;
    const kinds = this.kinds;
    const fieldCount = this.fieldCount;
    const jsonCols = this.jsonCols;
    const intCols = this.intCols;
    const dateCols = this.dateCols;
    // the regions: frame, steps, text (16 bytes past it read), ends, fields, classes, the columns' words,
    // the INT columns' values, the JSON texts: each with room for every line's field with its comma and
    // quotes, escaped (6 bytes a byte at most) when the page is at most `wasmEscapedPageBytesMax`, and the
    // 8 bytes a word copy writes past it (a cell checks its room: see `stopRoom`)
    const frameAt = wasm.regionsFrom();
    const opsAt = frameAt + frameBytes;
    const textAt = align8(opsAt + 4 * this.ops.length);
    const endsAt = align8(textAt + bytes + 16);
    const fieldsAt = endsAt + 4 * n;
    const classesAt = fieldsAt + 8 * fieldCount * n;
    const jsonWordsAt = classesAt + 4 * fieldCount;
    const intWordsAt = jsonWordsAt + 16 * jsonCols.length;
    const dateWordsAt = intWordsAt + 8 * intCols.length;
    const intsAt = align8(dateWordsAt + 12 * dateCols.length);
    const datesAt = intsAt + 8 * n * intCols.length;
    const textsAt = datesAt + 8 * n * dateCols.length;
    const room = align8((bytes <= wasmEscapedPageBytesMax ? 6 : 1) * bytes + 3 * n + 2 + 16);
    const end = textsAt + room * jsonCols.length;
    pages.used(end);
    const mem = wasm.memory;
    if (end > mem.buffer.byteLength) {
      // past the module's 4 GiB (a large page of many string columns: a room each) or no memory to grow
      // into: the JavaScript loop, whose texts take only what the cells need
      try {
        mem.grow(Math.ceil((end - mem.buffer.byteLength) / wasmPageBytes));
      } catch {
        return undefined;
      }
    }
    const u8 = new Uint8Array(mem.buffer);
    const u32 = new Uint32Array(mem.buffer);
    const i32 = new Int32Array(mem.buffer);
    const f64 = new Float64Array(mem.buffer);
    const fw = frameAt >> 2;
    u32[fw + fOps] = opsAt;
    u32[fw + fOpCount] = this.ops.length >> 1;
    u32[fw + fText] = textAt;
    u32[fw + fEnds] = endsAt;
    u32[fw + fBias] = from;
    u32[fw + fLines] = n;
    u32[fw + fFields] = fieldsAt;
    u32[fw + fFieldCount] = fieldCount;
    u32[fw + fJson] = jsonWordsAt;
    u32[fw + fJsonCount] = jsonCols.length;
    u32[fw + fInts] = intWordsAt;
    u32[fw + fIntCount] = intCols.length;
    u32[fw + fLineBytesMax] = lineBytesMax;
    u32[fw + fClasses] = classesAt;
    u32[fw + fDates] = dateWordsAt;
    u32[fw + fDateCount] = dateCols.length;
    i32.set(this.ops, opsAt >> 2);
    u8.set(b.subarray(from, to), textAt);
    u32.set(ends.subarray(a, a + n), endsAt >> 2);
    for (let j = 0; j < jsonCols.length; j++) {
      const w = (jsonWordsAt >> 2) + 4 * j;
      const out = textsAt + room * j;
      u32[w] = this.fieldA[jsonCols[j]!]!;
      u32[w + 1] = out;
      u32[w + 2] = 1;
      u32[w + 3] = room;
      u8[out] = 0x5b; // [
    }
    for (let j = 0; j < intCols.length; j++) {
      u32[(intWordsAt >> 2) + 2 * j] = this.fieldA[intCols[j]!]!;
      u32[(intWordsAt >> 2) + 2 * j + 1] = intsAt + 8 * n * j;
    }
    for (let j = 0; j < dateCols.length; j++) {
      const w = (dateWordsAt >> 2) + 3 * j;
      u32[w] = this.fieldA[dateCols[j]!]!;
      u32[w + 1] = this.fieldB[dateCols[j]!]!;
      u32[w + 2] = datesAt + 8 * n * j;
    }
    const page: Cell[][] = [];
    for (let c = 0; c < ncols; c++) page.push(kinds[c] === kindJson ? [] : new Array<Cell>(n));
    // the lines the module hands back, to RowParser
    const strings = this.strings.length >= n ? this.strings : (this.strings = new Uint8Array(n));
    strings.fill(0, 0, n);
    for (let r = 0; ; r++) {
      r = wasm.pageLines(frameAt, r);
      if (r >= n) break;
      if (u32[fw + fStop] !== stopNoMatch) return undefined;
      strings[r] = 1;
      this.parser.rowInto(line(a + r), this.scratch, 0);
      for (let c = 0, j = 0; c < ncols; c++) {
        const v = this.scratch[c]![0]!;
        if (kinds[c] !== kindJson) {
          page[c]![r] = v;
          continue;
        }
        const w = (jsonWordsAt >> 2) + 4 * j++;
        const cell = `${r > 0 ? ',' : ''}${v === null ? 'null' : JSON.stringify(v)}`;
        const at = u32[w + 1]! + u32[w + 2]!;
        const { read, written } = enc.encodeInto(cell, u8.subarray(at, u32[w + 1]! + room - 16));
        if (read !== cell.length) return undefined;
        u32[w + 2] = u32[w + 2]! + written;
      }
    }
    for (let j = 0; j < jsonCols.length; j++) {
      const w = (jsonWordsAt >> 2) + 4 * j;
      const out = u32[w + 1]!;
      const used = u32[w + 2]!;
      u8[out + used] = 0x5d; // ]
      json[jsonCols[j]!] = u8.subarray(out, out + used + 1);
    }
    // the other columns from the module's values, or from the fields' ranges (chunk offsets)
    for (let c = 0, ji = 0, jd = 0; c < ncols; c++) {
      const kind = kinds[c]!;
      if (kind === kindJson) continue;
      const col = page[c]!;
      const f = this.fieldA[c]!;
      const g = this.fieldB[c]!;
      const def = this.def.columns[c]!;
      const rowOf = (r: number) => (fieldsAt >> 2) + 2 * fieldCount * r;
      if (kind === kindInt) {
        const vals = (intsAt >> 3) + n * ji++;
        for (let r = 0; r < n; r++) {
          if (strings[r] !== 0) continue;
          const v = f64[vals + r]!;
          if (v >= 0) col[r] = v;
          else col[r] = toCell(def, b.toString('latin1', i32[rowOf(r) + 2 * f], i32[rowOf(r) + 2 * f + 1]));
        }
      } else if (kind === kindDateTime) {
        const vals = (datesAt >> 3) + n * jd++;
        for (let r = 0; r < n; r++) {
          if (strings[r] !== 0) continue;
          const v = f64[vals + r]!;
          if (!Number.isNaN(v)) col[r] = v;
          else {
            const row = rowOf(r);
            const ds = b.toString('latin1', i32[row + 2 * f], i32[row + 2 * f + 1]);
            col[r] = dateTimeCell(ds, b.toString('latin1', i32[row + 2 * g], i32[row + 2 * g + 1]));
          }
        }
      } else
        for (let r = 0; r < n; r++) {
          if (strings[r] !== 0) continue;
          const row = rowOf(r);
          col[r] = f < 0 ? null : toCell(def, b.toString('latin1', i32[row + 2 * f], i32[row + 2 * f + 1]));
        }
    }
    return page;
  }

  /** `page` in JavaScript: the reference (and the loop without the module). */
  private pageJs(
    b: Buffer,
    ends: Uint32Array,
    a: number,
    n: number,
    json: (Uint8Array | undefined)[],
    line: (i: number) => string,
  ): Cell[][] {
    const ncols = this.kinds.length;
    const kinds = this.kinds;
    const page: Cell[][] = [];
    for (let c = 0; c < ncols; c++) {
      page.push(kinds[c] === kindJson ? [] : new Array<Cell>(n));
      const j = this.json[c];
      if (j) {
        j.o = 0;
        j.room(2);
        j.buf[j.o++] = 0x5b; // [
      }
    }
    const fs = this.fieldStart;
    const fe = this.fieldEnd;
    const fc = this.fieldClasses;
    // plain views of the chunk: a Buffer's subarray and copy cost more than a Uint8Array's
    const u8 = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let r = 0; r < n; r++) {
      const i = a + r;
      const s = i === 0 ? 0 : ends[i - 1]! + 1;
      let e = Math.min(ends[i]!, s + lineBytesMax);
      if (e > s && b[e - 1] === 13) e--;
      if (!this.match(u8, dv, s, e) || (this.restColumn >= 0 && !this.copyRest(b, u8, dv, r))) {
        this.parser.rowInto(line(i), this.scratch, 0);
        for (let c = 0; c < ncols; c++) {
          const v = this.scratch[c]![0]!;
          const j = this.json[c];
          if (j) {
            if (r > 0) {
              j.room(1);
              j.buf[j.o++] = 0x2c; // ,
            }
            j.cell(v);
          } else page[c]![r] = v;
        }
        continue;
      }
      for (let c = 0; c < ncols; c++) {
        if (c === this.restColumn) continue; // written by copyRest
        const f = this.fieldA[c]!;
        switch (kinds[c]) {
          case kindJson: {
            const j = this.json[c]!;
            const fs0 = fs[f]!;
            const len = fe[f]! - fs0;
            if ((fc[f]! & classEscape) !== 0) {
              if (r > 0) {
                j.room(1);
                j.buf[j.o++] = 0x2c;
              }
              j.cell(b.toString('latin1', fs0, fs0 + len));
              break;
            }
            j.room(len + 3);
            const out = j.buf;
            let o = j.o;
            if (r > 0) out[o++] = 0x2c; // ,
            out[o++] = 0x22; // "
            // eight bytes at a time (a subarray and set a cell cost more: 10% of this function), as a
            // float64: bit-exact, as no eight ASCII bytes are a NaN (its top byte 0x7f or 0xff, and the
            // next at least 0xf0), so no value is changed on the way; then four
            const ov = j.view;
            let k = 0;
            for (; k + 8 <= len; k += 8) ov.setFloat64(o + k, dv.getFloat64(fs0 + k, true), true);
            if (k + 4 <= len) {
              ov.setUint32(o + k, dv.getUint32(fs0 + k, true), true);
              k += 4;
            }
            for (; k < len; k++) out[o + k] = u8[fs0 + k]!;
            o += len;
            out[o++] = 0x22;
            j.o = o;
            break;
          }
          case kindInt: {
            const s0 = fs[f]!;
            const len = fe[f]! - s0;
            let v = -1;
            if (len > 0 && len <= 15) {
              v = 0;
              for (let k = s0; k < s0 + len; k++) {
                const d = b[k]! - 48;
                if (d < 0 || d > 9) {
                  v = -1;
                  break;
                }
                v = v * 10 + d;
              }
            }
            page[c]![r] = v >= 0 ? v : toCell(this.def.columns[c]!, b.toString('latin1', s0, s0 + len));
            break;
          }
          case kindDateTime: {
            const g = this.fieldB[c]!;
            const ds = fs[f]!;
            const ts = fs[g]!;
            const v = fe[f]! - ds === 6 && fe[g]! - ts === 6 ? hdfsDateTimeBytes(b, ds, ts) : undefined;
            page[c]![r] =
              v !== undefined
                ? v
                : dateTimeCell(b.toString('latin1', ds, fe[f]), b.toString('latin1', ts, fe[g]));
            break;
          }
          default:
            page[c]![r] = f < 0 ? null : toCell(this.def.columns[c]!, b.toString('latin1', fs[f], fe[f]));
        }
      }
    }
    for (let c = 0; c < ncols; c++) {
      const j = this.json[c];
      if (!j) continue;
      j.room(1);
      j.buf[j.o++] = 0x5d; // ]
      json[c] = j.buf.subarray(0, j.o);
    }
    return page;
  }
}
