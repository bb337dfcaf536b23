/**
 * A set of unit indices (a migration's dirty 4 KiB units) as a sparse bitmap: pages of `unitPageBits` bits,
 * allocated when a unit in them is first added and dropped when their last one is deleted.
 *
 * Memory is bounded by the device, not by the number of units marked: at most one bit a unit (a 4 TiB device
 * in 4 KiB units: 128 MiB), and a page per region written (`unitPageBits` units, 128 MiB of a device in
 * 4 KiB units, in 4 KiB of memory). A `Set<number>` held about 40 bytes a unit and stops at 2^24 entries
 * ('Set maximum size exceeded': 64 GiB written in 4 KiB units made a source's writes fail).
 */

/** Units a page holds (4 KiB of bitmap). */
export const unitPageBits = 32_768;
const wordsPerPage = unitPageBits / 32;

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export class UnitSet implements Iterable<number> {
  private readonly pages = new Map<number, { bits: Uint32Array; count: number }>();
  private count = 0;

  constructor(units: Iterable<number> = []) {
    for (const u of units) this.add(u);
  }

  /** Units in the set. */
  get size(): number {
    return this.count;
  }

  has(u: number): boolean {
    const p = this.pages.get(Math.floor(u / unitPageBits));
    if (!p) return false;
    const b = u % unitPageBits;
    return (p.bits[b >>> 5]! & (1 << (b & 31))) !== 0;
  }

  add(u: number): this {
    this.addRange(u, 1);
    return this;
  }

  delete(u: number): boolean {
    const had = this.has(u);
    if (had) this.deleteRange(u, 1);
    return had;
  }

  clear(): void {
    this.pages.clear();
    this.count = 0;
  }

  /** Adds units [first, first + n); a whole page is filled at once (a trim of a whole disk is 2^30 units). */
  addRange(first: number, n: number): void {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(n) || first < 0 || n < 0)
      throw new RangeError(`UnitSet: units [${first}, +${n}) are not indices`);
    this.span(first, n, true);
  }

  /** Deletes units [first, first + n). */
  deleteRange(first: number, n: number): void {
    if (n <= 0 || this.count === 0) return;
    this.span(first, n, false);
  }

  private span(first: number, n: number, set: boolean): void {
    const end = first + n;
    for (let u = first; u < end; ) {
      const key = Math.floor(u / unitPageBits);
      const pageEnd = Math.min(end, (key + 1) * unitPageBits);
      let p = this.pages.get(key);
      if (!p) {
        if (!set) {
          u = pageEnd;
          continue;
        }
        p = { bits: new Uint32Array(wordsPerPage), count: 0 };
        this.pages.set(key, p);
      }
      let b = u - key * unitPageBits;
      const bEnd = pageEnd - key * unitPageBits;
      if (b === 0 && bEnd === unitPageBits) {
        // the whole page at once
        const delta = (set ? unitPageBits : 0) - p.count;
        if (set) p.bits.fill(0xffffffff);
        p.count += delta;
        this.count += delta;
        b = bEnd;
      }
      while (b < bEnd) {
        const w = b >>> 5;
        const lo = b & 31;
        const hi = Math.min(32, lo + (bEnd - b));
        const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
        const old = p.bits[w]!;
        const next = set ? (old | mask) >>> 0 : (old & ~mask) >>> 0;
        const delta = popcount(next) - popcount(old);
        p.bits[w] = next;
        p.count += delta;
        this.count += delta;
        b += hi - lo;
      }
      if (p.count === 0) this.pages.delete(key);
      u = pageEnd;
    }
  }

  /** The runs of consecutive units, ascending, as [first, count] (a run may cross pages). */
  *runs(): Generator<[number, number]> {
    let start = -1;
    let next = -1;
    for (const key of [...this.pages.keys()].sort((a, b) => a - b)) {
      const page = this.pages.get(key)!;
      if (page.count === unitPageBits) {
        // a full page is one run (a whole disk trimmed is 2^30 units)
        const u = key * unitPageBits;
        if (u === next) next += unitPageBits;
        else {
          if (start >= 0) yield [start, next - start];
          start = u;
          next = u + unitPageBits;
        }
        continue;
      }
      const bits = page.bits;
      for (let w = 0; w < wordsPerPage; w++) {
        let x = bits[w]!;
        if (x === 0) continue;
        const base = key * unitPageBits + w * 32;
        while (x !== 0) {
          const lo = 31 - Math.clz32(x & -x);
          // the length of the run of ones from bit `lo`
          const ones = ~(x >>> lo) === 0 ? 32 - lo : 31 - Math.clz32(~(x >>> lo) & -~(x >>> lo));
          const u = base + lo;
          if (u === next) next += ones;
          else {
            if (start >= 0) yield [start, next - start];
            start = u;
            next = u + ones;
          }
          x = lo + ones >= 32 ? 0 : (x & ~(((1 << ones) - 1) << lo)) >>> 0;
        }
      }
    }
    if (start >= 0) yield [start, next - start];
  }

  *[Symbol.iterator](): Generator<number> {
    for (const [first, n] of this.runs()) for (let u = first; u < first + n; u++) yield u;
  }
}
