import { compareKeys, lowerBoundOf } from './backends/mem.js';
import { PackKind } from './packindex.js';

/** Where a packed key's current version lives (as `PackedRefs.get` returns it). */
export interface PackRef {
  pack: string;
  offset: number;
  size: number;
  etag: string;
  modifiedMs: number;
  deleted: boolean;
  direct: boolean;
}

/** The index kind of a pack's reference. */
export function refKind(r: PackRef): PackKind {
  return r.deleted ? PackKind.Deleted : r.direct ? PackKind.Direct : PackKind.Data;
}

const slotsAtFirst = 1024;

/** FNV-1a over a string's UTF-16 code units (the key table's hash; V8's own string hash is not exposed). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h | 0;
}

/**
 * Every packed key's reference, and per pack the bytes keys still point to. A WAL holds one per key it ever
 * packed, so they are kept as slots of typed arrays found through a map from key to slot, not as an object
 * per key: a pack of 100,000 keys made 100,000 objects that the garbage collector copied twice (young, then
 * old) and then traced at every full collection for as long as the keys lived. The etag strings stay, in an
 * array by slot. `get` builds a `PackRef` for the reader; a slot whose key is written again is reused.
 */
export class PackedRefs {
  /**
   * Key -> slot: an open-addressing table (linear probing, at most half full) of each key's hash and slot + 1
   * (0: empty), the keys themselves in `keyOf` by slot. A probe compares hashes held in the table and reads a
   * key only when they match: a JavaScript Map of a few hundred thousand keys took about 1 us per insert
   * here (each step of a bucket's chain loads another key string), most of a pack's time per key.
   */
  private tableHash = new Int32Array(slotsAtFirst * 2);
  private tableSlot = new Int32Array(slotsAtFirst * 2);
  private readonly keyOf: string[] = [];
  private packOf = new Uint32Array(slotsAtFirst);
  private offsetOf = new Float64Array(slotsAtFirst);
  private sizeOf = new Float64Array(slotsAtFirst);
  private mtimeOf = new Float64Array(slotsAtFirst);
  private kindOf = new Uint8Array(slotsAtFirst);
  private readonly etagOf: string[] = [];
  private slots = 0;
  /** Pack names by number (a slot holds the number), and the numbers by name. */
  private readonly packNames: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  /** Per pack, the data bytes of it that keys still point to. */
  private readonly live = new Map<string, number>();

  get size(): number {
    return this.slots;
  }

  has(key: string): boolean {
    return this.find(key, hashKey(key)) >= 0;
  }

  get(key: string): PackRef | undefined {
    const s = this.find(key, hashKey(key));
    return s < 0 ? undefined : this.refAt(s);
  }

  /**
   * Points `key` at `size` bytes at `offset` of `pack`, taking its bytes off the live count of the pack it
   * was in; the caller adds `pack`'s live bytes once for all its keys (`addLive`).
   */
  point(
    key: string,
    pack: string,
    offset: number,
    size: number,
    etag: string,
    modifiedMs: number,
    kind: PackKind,
  ): void {
    const h = hashKey(key);
    let s = this.find(key, h);
    if (s < 0) {
      s = this.slots++;
      if (s === this.packOf.length) this.grow();
      this.keyOf.push(key);
      this.insert(h, s);
    } else {
      const was = this.packNames[this.packOf[s]!]!;
      this.live.set(was, (this.live.get(was) ?? 0) - this.sizeOf[s]!);
    }
    this.packOf[s] = this.numberOf(pack);
    this.offsetOf[s] = offset;
    this.sizeOf[s] = size;
    this.mtimeOf[s] = modifiedMs;
    this.kindOf[s] = kind;
    this.etagOf[s] = etag;
  }

  addLive(pack: string, bytes: number): void {
    this.live.set(pack, (this.live.get(pack) ?? 0) + bytes);
  }

  liveOf(pack: string): number {
    return this.live.get(pack) ?? 0;
  }

  /** Forgets a pack's live count (once it is deleted: no key points to it any more). */
  forgetPack(pack: string): void {
    this.live.delete(pack);
  }

  /**
   * Every key with its reference, in the order keys were first packed: a walk of every packed key, a
   * reference built for each, for checks (the tests' model and recounts); listings read by rank.
   */
  *entries(): IterableIterator<[string, PackRef]> {
    for (let s = 0; s < this.slots; s++) yield [this.keyOf[s]!, this.refAt(s)];
  }

  /**
   * The slots in ascending key order (`compareKeys`), for listings: sorted at the first listing, then the
   * keys packed since are sorted among themselves and merged in (a slot is never removed, only pointed
   * elsewhere), so a listing's page costs a search and its own keys, not a walk of every packed key. Ranks
   * hold until the next key is packed.
   */
  private order = new Int32Array(0);

  private sorted(): Int32Array {
    const old = this.order;
    if (old.length === this.slots) return old;
    const keys = this.keyOf;
    const fresh = new Int32Array(this.slots - old.length);
    for (let i = 0; i < fresh.length; i++) fresh[i] = old.length + i;
    fresh.sort((a, b) => compareKeys(keys[a]!, keys[b]!));
    const out = new Int32Array(this.slots);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < fresh.length)
      out[k++] = compareKeys(keys[old[i]!]!, keys[fresh[j]!]!) <= 0 ? old[i++]! : fresh[j++]!;
    while (i < old.length) out[k++] = old[i++]!;
    while (j < fresh.length) out[k++] = fresh[j++]!;
    this.order = out;
    return out;
  }

  /** The rank, in key order, of the first key not before `key` (`size` when none). */
  rankOf(key: string): number {
    const order = this.sorted();
    return lowerBoundOf(order.length, (r) => this.keyOf[order[r]!]!, key);
  }

  /** The key of rank `r` (below `size`) in key order. */
  keyAtRank(r: number): string {
    return this.keyOf[this.sorted()[r]!]!;
  }

  /** The reference of the key of rank `r` (below `size`) in key order. */
  refAtRank(r: number): PackRef {
    return this.refAt(this.sorted()[r]!);
  }

  /** The keys that point into each of `packs` (no reference built per key). */
  keysIn(packs: Iterable<string>): Map<string, string[]> {
    const byNumber = new Map<number, string[]>();
    const out = new Map<string, string[]>();
    for (const p of packs) {
      const keys: string[] = [];
      out.set(p, keys);
      const n = this.packNumbers.get(p);
      if (n !== undefined) byNumber.set(n, keys);
    }
    if (byNumber.size > 0)
      for (let s = 0; s < this.slots; s++) byNumber.get(this.packOf[s]!)?.push(this.keyOf[s]!);
    return out;
  }

  /** The slot of `key` (hash `h`), or -1. */
  private find(key: string, h: number): number {
    const mask = this.tableSlot.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const s = this.tableSlot[i]!;
      if (s === 0) return -1;
      if (this.tableHash[i] === h && this.keyOf[s - 1] === key) return s - 1;
    }
  }

  /** Enters slot `s` under hash `h` (not present yet); the table doubles before it is half full. */
  private insert(h: number, s: number): void {
    if (2 * (s + 1) > this.tableSlot.length) {
      const hashes = this.tableHash;
      const slots = this.tableSlot;
      this.tableHash = new Int32Array(hashes.length * 2);
      this.tableSlot = new Int32Array(slots.length * 2);
      for (let i = 0; i < slots.length; i++) if (slots[i] !== 0) this.place(hashes[i]!, slots[i]!);
    }
    this.place(h, s + 1);
  }

  private place(h: number, slotPlusOne: number): void {
    const mask = this.tableSlot.length - 1;
    let i = h & mask;
    while (this.tableSlot[i] !== 0) i = (i + 1) & mask;
    this.tableHash[i] = h;
    this.tableSlot[i] = slotPlusOne;
  }

  private refAt(s: number): PackRef {
    const kind = this.kindOf[s]!;
    return {
      pack: this.packNames[this.packOf[s]!]!,
      offset: this.offsetOf[s]!,
      size: this.sizeOf[s]!,
      etag: this.etagOf[s]!,
      modifiedMs: this.mtimeOf[s]!,
      deleted: kind === PackKind.Deleted,
      direct: kind === PackKind.Direct,
    };
  }

  private numberOf(pack: string): number {
    let n = this.packNumbers.get(pack);
    if (n === undefined) {
      n = this.packNames.length;
      this.packNames.push(pack);
      this.packNumbers.set(pack, n);
    }
    return n;
  }

  private grow(): void {
    const n = this.packOf.length * 2;
    const more = <T extends Uint32Array | Float64Array | Uint8Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.packOf = more(this.packOf, new Uint32Array(n));
    this.offsetOf = more(this.offsetOf, new Float64Array(n));
    this.sizeOf = more(this.sizeOf, new Float64Array(n));
    this.mtimeOf = more(this.mtimeOf, new Float64Array(n));
    this.kindOf = more(this.kindOf, new Uint8Array(n));
  }
}
