/**
 * A decoder of the LZMA "alone" format (the `.lzma` files of LZMA Utils and `xz --format=lzma`), for HTTP
 * bodies sent with `Content-Encoding: lzma`, which Suricata's HTTP parser (libhtp) undoes and which HTTP
 * Evader sends. Written from Igor Pavlov's LZMA specification (lzma-specification.txt in the LZMA SDK,
 * public domain): a 13-byte header (the lc/lp/pb properties byte, the dictionary size, the uncompressed
 * size or all ones for "unknown, ended by a marker"), then one range-coded stream of literals, matches and
 * repeated matches over a window of the output.
 *
 * The window is the output itself, capped by the caller (`capBytes`), so the dictionary size the header
 * declares (up to 4 GiB) allocates nothing: a distance past the output decoded so far is an error. Work is
 * bounded by the cap: each step of the loop writes at least one byte or ends it. Input that ends early
 * gives what decoded before; input that breaks the format (a bad properties byte, a distance before the
 * start) gives what decoded before the break, and `ok` false.
 */

/** The 11-bit probabilities' scale, and their start (one half). */
const probBits = 11;
const probHalf = 1 << (probBits - 1);
/** Bits a probability moves by per decoded bit. */
const moveBits = 5;
const topValue = 1 << 24;
/** States of the coder's state machine (what the last few symbols were). */
const states = 12;
const posStatesMax = 16;
/** Distances below this (`endPosModelIndex` slots) code their low bits with probabilities of their own. */
const endPosModelIndex = 14;
const fullDistances = 128;
const alignBits = 4;
/** lc + lp at most: 0x300 << 8 literal probabilities (384 KiB); the SDK allows 12 (6 MiB), no encoder uses it. */
const litBitsMax = 8;

// offsets into the one probability array
const isMatch = 0;
const isRep = isMatch + (states << 4);
const isRepG0 = isRep + states;
const isRepG1 = isRepG0 + states;
const isRepG2 = isRepG1 + states;
const isRep0Long = isRepG2 + states;
const posSlot = isRep0Long + (states << 4);
const posSpecial = posSlot + (4 << 6);
const align = posSpecial + 1 + fullDistances - endPosModelIndex;
// a length coder: choice, choice2, low[16][8], mid[16][8], high[256]
const lenChoice2 = 1;
const lenLow = 2;
const lenMid = lenLow + (posStatesMax << 3);
const lenHigh = lenMid + (posStatesMax << 3);
const lenProbs = lenHigh + 256;
const lenCoder = align + (1 << alignBits);
const repLenCoder = lenCoder + lenProbs;
const literal = repLenCoder + lenProbs;

/** Thrown when the range decoder reads past the input's end. */
const inputEnded = new Error('lzma input ended');

export interface LzmaResult {
  /** The bytes decoded, up to the cap. */
  out: Uint8Array;
  /** The stream ended as its header said (its size reached, or the end marker read). */
  ok: boolean;
  /** Output stopped at the cap with more to come. */
  capped: boolean;
  /** What broke the stream, where `ok` is false. */
  error?: string;
}

/** Decodes an LZMA-alone stream, the output capped at `capBytes`. Never throws. */
export function lzmaDecode(input: Uint8Array, capBytes: number): LzmaResult {
  if (input.length < 13) return fail('header: under 13 bytes');
  let d = input[0]!;
  if (d >= 9 * 5 * 5) return fail(`properties byte ${d}: over 224`);
  const lc = d % 9;
  d = (d / 9) | 0;
  const lp = d % 5;
  const pb = (d / 5) | 0;
  if (lc + lp > litBitsMax) return fail(`lc + lp = ${lc + lp}: over ${litBitsMax}`);
  // the uncompressed size: 8 bytes little-endian, all ones for unknown (then an end marker must come)
  let sizeKnown = false;
  let size = 0;
  for (let i = 12; i >= 5; i--) {
    if (input[i] !== 0xff) sizeKnown = true;
    size = size * 256 + input[i]!;
  }
  const dec = new Decoder(input, 13, lc, lp, pb, sizeKnown ? Math.min(size, capBytes) : capBytes);
  try {
    dec.run(sizeKnown ? size : -1);
  } catch (e) {
    if (e !== inputEnded) throw e;
    dec.error = 'input ended early';
  }
  const out = dec.out.subarray(0, dec.n);
  if (dec.error === 'capped') return { out, ok: false, capped: true };
  if (dec.error !== undefined) return { out, ok: false, capped: false, error: dec.error };
  return { out, ok: true, capped: false };
}

const fail = (error: string): LzmaResult => ({ out: new Uint8Array(0), ok: false, capped: false, error });

class Decoder {
  /** The output so far, `n` bytes of it, grown by doubling up to `cap`. */
  out: Uint8Array;
  n = 0;
  error: string | undefined;
  private readonly probs: Uint16Array;
  private range = -1;
  private code = 0;
  private at: number;

  constructor(
    private readonly input: Uint8Array,
    start: number,
    private readonly lc: number,
    private readonly lp: number,
    private readonly pb: number,
    private readonly cap: number,
  ) {
    this.out = new Uint8Array(Math.min(cap, Math.max(4096, 4 * input.length)));
    this.probs = new Uint16Array(literal + (0x300 << (lc + lp))).fill(probHalf);
    this.at = start;
  }

  /** Room for `k` more bytes, as many as the cap leaves (fewer: the output stops there). */
  private room(k: number): number {
    const want = Math.min(this.n + k, this.cap);
    if (want > this.out.length) {
      const grown = new Uint8Array(Math.min(this.cap, Math.max(want, 2 * this.out.length)));
      grown.set(this.out.subarray(0, this.n));
      this.out = grown;
    }
    return want - this.n;
  }

  private byte(): number {
    if (this.at >= this.input.length) throw inputEnded;
    return this.input[this.at++]!;
  }

  // `range` and `code` are unsigned 32-bit values held as int32 (`| 0`: V8 keeps them untagged, where
  // values past 2^31 stored as numbers made every update a heap number's); compared unsigned (`>>> 0`)

  private bit(i: number): number {
    const p = this.probs[i]!;
    // (range >>> 11) * p < 2^32: its low 32 bits are all of it
    const bound = Math.imul(this.range >>> probBits, p);
    let b: number;
    if (this.code >>> 0 < bound >>> 0) {
      this.range = bound;
      this.probs[i] = p + (((1 << probBits) - p) >>> moveBits);
      b = 0;
    } else {
      this.range = (this.range - bound) | 0;
      this.code = (this.code - bound) | 0;
      this.probs[i] = p - (p >>> moveBits);
      b = 1;
    }
    this.normalize();
    return b;
  }

  /** Keeps the range at least 2^24 (`topValue`), shifting the next input byte into the code. */
  private normalize(): void {
    if (this.range >>> 0 < topValue) {
      this.range <<= 8;
      this.code = (this.code << 8) | this.byte();
    }
  }

  private direct(bits: number): number {
    let r = 0;
    for (let i = 0; i < bits; i++) {
      this.range = (this.range >>> 1) | 0;
      let b = 0;
      if (this.code >>> 0 >= this.range >>> 0) {
        this.code = (this.code - this.range) | 0;
        b = 1;
      }
      r = (r << 1) | b;
      this.normalize();
    }
    return r >>> 0;
  }

  private tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << bits);
  }

  private reverseTree(base: number, bits: number): number {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(base + m);
      m = (m << 1) | b;
      sym |= b << i;
    }
    return sym;
  }

  /** A match length less 2 (0-271) from the length coder at `c`. */
  private length(c: number, posState: number): number {
    if (this.bit(c) === 0) return this.tree(c + lenLow + (posState << 3), 3);
    if (this.bit(c + lenChoice2) === 0) return 8 + this.tree(c + lenMid + (posState << 3), 3);
    return 16 + this.tree(c + lenHigh, 8);
  }

  /** A match's distance less 1, for a length `len` less 2; 0xffffffff is the end marker. */
  private distance(len: number): number {
    const slot = this.tree(posSlot + (Math.min(len, 3) << 6), 6);
    if (slot < 4) return slot;
    const direct = (slot >>> 1) - 1;
    let dist = ((2 | (slot & 1)) << direct) >>> 0;
    if (slot < endPosModelIndex) return (dist + this.reverseTree(posSpecial + dist - slot, direct)) >>> 0;
    dist = (dist + ((this.direct(direct - alignBits) << alignBits) >>> 0)) >>> 0;
    return (dist + this.reverseTree(align, alignBits)) >>> 0;
  }

  /** Decodes until `size` bytes (-1: until the end marker), the output's end, or an error. */
  run(size: number): void {
    if (this.byte() !== 0) {
      this.error = 'range coder: first byte not 0';
      return;
    }
    for (let i = 0; i < 4; i++) this.code = (this.code << 8) | this.byte();
    if (this.code === this.range) {
      this.error = 'range coder: corrupt start';
      return;
    }
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    let state = 0;
    let rep0 = 0;
    let rep1 = 0;
    let rep2 = 0;
    let rep3 = 0;
    for (;;) {
      if (size >= 0 && this.n >= size) return;
      const out = this.out;
      const posState = this.n & pbMask;
      if (this.bit(isMatch + (state << 4) + posState) === 0) {
        const prev = this.n > 0 ? out[this.n - 1]! : 0;
        const base = literal + 0x300 * (((this.n & lpMask) << this.lc) + (prev >>> (8 - this.lc)));
        let sym = 1;
        if (state >= 7) {
          // after a match: the byte at rep0 steers the first bits until one differs
          let match = out[this.n - rep0 - 1]!;
          while (sym < 0x100) {
            const mb = (match >>> 7) & 1;
            match <<= 1;
            const b = this.bit(base + ((1 + mb) << 8) + sym);
            sym = (sym << 1) | b;
            if (mb !== b) break;
          }
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(base + sym);
        if (this.room(1) === 0) {
          this.error = 'capped';
          return;
        }
        this.out[this.n++] = sym - 0x100;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(isRep + state) !== 0) {
        if (this.n === 0) {
          this.error = 'a repeated match before any output';
          return;
        }
        if (this.bit(isRepG0 + state) === 0) {
          if (this.bit(isRep0Long + (state << 4) + posState) === 0) {
            // a short rep: one byte at rep0
            state = state < 7 ? 9 : 11;
            if (this.room(1) === 0) {
              this.error = 'capped';
              return;
            }
            this.out[this.n] = this.out[this.n - rep0 - 1]!;
            this.n++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(isRepG1 + state) === 0) dist = rep1;
          else {
            if (this.bit(isRepG2 + state) === 0) dist = rep2;
            else {
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        len = this.length(repLenCoder, posState);
        state = state < 7 ? 8 : 11;
      } else {
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        len = this.length(lenCoder, posState);
        state = state < 7 ? 7 : 10;
        rep0 = this.distance(len);
        if (rep0 === 0xffffffff) {
          if (size >= 0 && this.n < size) this.error = `end marker at byte ${this.n} of ${size}`;
          return;
        }
        if (rep0 >= this.n) {
          this.error = `distance ${rep0 + 1} at byte ${this.n}: before the start`;
          return;
        }
      }
      // copy len + 2 bytes from rep0 + 1 back, as far as the size and the cap allow
      const k = Math.min(len + 2, size >= 0 ? size - this.n : len + 2);
      const fits = this.room(k);
      const o = this.out;
      for (let i = 0; i < fits; i++, this.n++) o[this.n] = o[this.n - rep0 - 1]!;
      if (fits < k) {
        this.error = 'capped';
        return;
      }
    }
  }
}
