/**
 * Index nodes. A node covers a contiguous range of blocks [from, to) (block sequence numbers in the
 * progress log) and maps each key to the children that hold it: block sequence numbers at level 0, the
 * object keys of level-(L-1) nodes above that. Layout (little-endian):
 *
 *   "HLN1" | u32 headerLen | header JSON | pad to 8 | f64 keys[n] | u32 postOff[n+1] | u32 post[m] | u32 bloom[w]
 *
 * keys are sorted and distinct; post[postOff[i], postOff[i+1]) are the child indices of key i, ascending.
 * The bloom filter (k = 3, about 10 bits per key) answers most absent keys without a binary search. The
 * header carries a HighwayHash of the body, checked on every read.
 *
 * "HLN2" (written by the indexer since 2026-12-03; `encodeNode(node, 2)`) cuts the same arrays into pages of
 * `pageKeys` keys, each with its own checksum, behind a small directory, so a lookup reads the header and
 * directory once and then one page (a range get each), not the whole node:
 *
 *   "HLN2" | u32 headerLen | u32 directoryLen | u32 0 | u64 check of (header JSON | directory) | header JSON |
 *   directory: per page f64 firstKey, u32 end (bytes from the first page), u64 check of the page |
 *   page 0 | page 1 | ... | u32 bloom[w]
 *
 * A page of c keys: f64 keys[c] | u32 postOff[c + 1] | u32 post[postOff[0], postOff[c]) (the node's own
 * offsets, so a page is three copies of the node's arrays; a reader subtracts the page's first). The
 * header's `check` is the bloom filter's (read whole only: merges take the union's filter from it; a
 * lookup answers from the page, whose keys are exact). Any alignment: read through DataViews or copied.
 */
import { hash64Words } from '@strata/highwayhash';

export interface NodeHeader {
  level: number;
  from: number;
  to: number;
  /** Level 0: block sequence numbers; above: object keys of child nodes. */
  children: (number | string)[];
  /** [from, to) of each child node (levels above 0). */
  ranges?: [number, number][];
  n: number;
  m: number;
  w: number;
  check: string;
  /** HLN2: keys a page (the last one may hold fewer) and pages. */
  pageKeys?: number;
  pages?: number;
}

export interface IndexNode {
  header: NodeHeader;
  keys: Float64Array;
  postOff: Uint32Array;
  post: Uint32Array;
  bloom: Uint32Array;
}

/** Bound on keys in one node: larger nodes are refused (the add policy keeps them well below). */
export const nodeKeysMax = 1 << 26;

const bloomHashes = 3;
const checkKey = new Uint8Array(32).fill(7);

function bloomWords(n: number): number {
  let w = 1;
  while (w * 32 < n * 10) w *= 2;
  return w;
}

/** The filter of a node that only feeds another merge (`mergeNodes` with `filter: false`): none. */
const noFilter = new Uint32Array(0);

// A key's filter bits: (h1 + i * h2) mod the filter's bits, for i < bloomHashes (bloomAdd, bloomHas and a
// stored node's lookup on its bytes)
const bloomH1 = (key: number) => (key % 4294967296) >>> 0;
const bloomH2 = (key: number) => (Math.floor(key / 4294967296) * 2654435761 + 1) >>> 0;

function bloomAdd(bloom: Uint32Array, key: number): void {
  const mask = bloom.length * 32 - 1;
  const h1 = bloomH1(key);
  const h2 = bloomH2(key);
  for (let i = 0; i < bloomHashes; i++) {
    const b = (h1 + Math.imul(i, h2)) & mask;
    bloom[b >>> 5]! |= 1 << (b & 31);
  }
}

function bloomHas(bloom: Uint32Array, key: number): boolean {
  const mask = bloom.length * 32 - 1;
  const h1 = bloomH1(key);
  const h2 = bloomH2(key);
  for (let i = 0; i < bloomHashes; i++) {
    const b = (h1 + Math.imul(i, h2)) & mask;
    if ((bloom[b >>> 5]! & (1 << (b & 31))) === 0) return false;
  }
  return true;
}

/** A node from sorted distinct keys, all pointing to one child. */
export function leafNode(
  level: number,
  from: number,
  to: number,
  child: number | string,
  keys: Float64Array,
  range?: [number, number],
  /** false: no filter (a part that `mergeAll` merges; it builds the filter of what it returns). */
  filter = true,
): IndexNode {
  const n = keys.length;
  const postOff = new Uint32Array(n + 1);
  for (let i = 0; i <= n; i++) postOff[i] = i;
  const bloom = filter ? undefined : noFilter;
  return finish(
    level,
    from,
    to,
    [child],
    range ? [range] : undefined,
    keys,
    postOff,
    new Uint32Array(n),
    bloom,
  );
}

function finish(
  level: number,
  from: number,
  to: number,
  children: (number | string)[],
  ranges: [number, number][] | undefined,
  keys: Float64Array,
  postOff: Uint32Array,
  post: Uint32Array,
  bloomOf?: Uint32Array,
): IndexNode {
  let w = bloomWords(keys.length);
  let bloom = bloomOf;
  if (bloom === noFilter) w = 0;
  else if (!bloom || bloom.length !== w) {
    bloom = new Uint32Array(w);
    for (let i = 0; i < keys.length; i++) bloomAdd(bloom, keys[i]!);
  }
  const header: NodeHeader = { level, from, to, children, n: keys.length, m: post.length, w, check: '' };
  if (ranges) header.ranges = ranges;
  return { header, keys, postOff, post, bloom };
}

/**
 * The merge operator: union of keys and of pointers; b's children follow a's. Ranges must be adjacent.
 * `filter: false` leaves the result without its filter (an empty one): for the inner merges of
 * `mergeAll`, whose results only feed the next merge.
 */
export function mergeNodes(a: IndexNode, b: IndexNode, opts: { filter?: boolean } = {}): IndexNode {
  const ha = a.header;
  const hb = b.header;
  if (ha.level !== hb.level || ha.to !== hb.from)
    throw new Error(
      `mergeNodes: nodes [${ha.from},${ha.to}) L${ha.level} and [${hb.from},${hb.to}) L${hb.level} are not adjacent`,
    );
  const shift = ha.children.length;
  // (a stored node's arrays are getters: read once)
  const aKeys = a.keys;
  const aOff = a.postOff;
  const aPost = a.post;
  const bKeys = b.keys;
  const bOff = b.postOff;
  const bPost = b.post;
  const na = aKeys.length;
  const nb = bKeys.length;
  const keys = new Float64Array(na + nb);
  const postOff = new Uint32Array(na + nb + 1);
  const post = new Uint32Array(aPost.length + bPost.length);
  let i = 0;
  let j = 0;
  let k = 0;
  let m = 0;
  while (i < na && j < nb) {
    const ka = aKeys[i]!;
    const kb = bKeys[j]!;
    postOff[k] = m;
    if (ka <= kb) {
      keys[k] = ka;
      for (let p = aOff[i]!, e = aOff[i + 1]!; p < e; p++) post[m++] = aPost[p]!;
      i++;
    } else keys[k] = kb;
    if (kb <= ka) {
      for (let p = bOff[j]!, e = bOff[j + 1]!; p < e; p++) post[m++] = bPost[p]! + shift;
      j++;
    }
    k++;
  }
  // the rest of either side, its pointer lists as they are (shifted for b)
  for (; i < na; i++, k++) {
    keys[k] = aKeys[i]!;
    postOff[k] = m;
    for (let p = aOff[i]!, e = aOff[i + 1]!; p < e; p++) post[m++] = aPost[p]!;
  }
  for (; j < nb; j++, k++) {
    keys[k] = bKeys[j]!;
    postOff[k] = m;
    for (let p = bOff[j]!, e = bOff[j + 1]!; p < e; p++) post[m++] = bPost[p]! + shift;
  }
  postOff[k] = m;
  if (k > nodeKeysMax) throw new Error(`mergeNodes: ${k} keys is over nodeKeysMax ${nodeKeysMax}`);
  const ranges = ha.ranges && hb.ranges ? [...ha.ranges, ...hb.ranges] : undefined;
  // The filter of the union is the union of the filters when they have its size (its bits depend only on
  // the key and the size): the larger node's filter copied and the other's keys added, instead of every
  // key again. The add operator merges each child into a parent of up to millions of keys.
  const w = bloomWords(k);
  let bloom: Uint32Array | undefined;
  if (opts.filter === false) bloom = noFilter;
  else if (a.bloom.length === w) {
    bloom = a.bloom.slice();
    for (let x = 0; x < nb; x++) bloomAdd(bloom, bKeys[x]!);
  } else if (b.bloom.length === w) {
    bloom = b.bloom.slice();
    for (let x = 0; x < na; x++) bloomAdd(bloom, aKeys[x]!);
  }
  // an inner merge's result only feeds the next merge: views, not copies, of what it filled
  const inner = opts.filter === false;
  return finish(
    ha.level,
    ha.from,
    hb.to,
    [...ha.children, ...hb.children],
    ranges,
    inner ? keys.subarray(0, k) : keys.slice(0, k),
    inner ? postOff.subarray(0, k + 1) : postOff.slice(0, k + 1),
    inner ? post.subarray(0, m) : post.slice(0, m),
    bloom,
  );
}

/**
 * The merge operator over adjacent nodes, in order (the add operator's batch: a parent and the children
 * it takes at once). Merged pairwise in a balanced tree, so a key is copied about log2(nodes) times, not
 * once for every node merged after it (a parent taking 64 children one by one copied its keys 64 times),
 * and only the last merge builds a filter (parts made without one, `leafNode(..., false)`, get it here).
 */
export function mergeAll(nodes: IndexNode[]): IndexNode {
  if (nodes.length === 0) throw new Error('mergeAll: no nodes to merge');
  const one = nodes[0]!;
  if (nodes.length === 1 && one.bloom === noFilter) {
    const h = one.header;
    return finish(h.level, h.from, h.to, h.children, h.ranges, one.keys, one.postOff, one.post);
  }
  let row = nodes;
  while (row.length > 1) {
    const last = row.length === 2;
    const next: IndexNode[] = [];
    for (let i = 0; i + 1 < row.length; i += 2)
      next.push(mergeNodes(row[i]!, row[i + 1]!, last ? {} : { filter: false }));
    if (row.length % 2 === 1) next.push(row[row.length - 1]!);
    row = next;
  }
  return row[0]!;
}

/** A run of a node's children that compaction replaced by one merged child. */
export interface ChildRun {
  /** Index of the run's first child in the node's children. */
  start: number;
  /** Children in the run (at least 2). */
  count: number;
  /** The merged child's object key, and the block range it covers. */
  child: string;
  range: [number, number];
}

/**
 * Compaction, seen from the parent: each run of children is replaced by the one node they were merged
 * into. Keys stay; each pointer list is remapped, and a key that pointed to several children of a run
 * points to the merged child once (a pointer list stays ascending and distinct).
 */
export function mergeChildren(node: IndexNode, runs: ChildRun[]): IndexNode {
  const h = node.header;
  if (h.level === 0) throw new Error('mergeChildren: a level-0 node has blocks, not child nodes');
  if (!h.ranges) throw new Error("mergeChildren: the node has no children's ranges (an older version's)");
  const nc = h.children.length;
  const map = new Uint32Array(nc);
  const children: (number | string)[] = [];
  const ranges: [number, number][] = [];
  let r = 0;
  for (let i = 0; i < nc; ) {
    const run = runs[r];
    if (run && run.start === i) {
      if (run.count < 2 || i + run.count > nc)
        throw new Error(`mergeChildren: run [${i}, ${i + run.count}) of ${nc} children is not a run`);
      for (let j = 0; j < run.count; j++) map[i + j] = children.length;
      children.push(run.child);
      ranges.push(run.range);
      i += run.count;
      r++;
    } else {
      map[i] = children.length;
      children.push(h.children[i]!);
      ranges.push(h.ranges[i]!);
      i++;
    }
  }
  if (r !== runs.length) throw new Error('mergeChildren: runs out of order or past the children');
  const n = node.keys.length;
  const postOff = new Uint32Array(n + 1);
  const post = new Uint32Array(node.post.length);
  let m = 0;
  for (let k = 0; k < n; k++) {
    postOff[k] = m;
    const m0 = m;
    for (let p = node.postOff[k]!; p < node.postOff[k + 1]!; p++) {
      const c = map[node.post[p]!]!;
      if (m === m0 || post[m - 1] !== c) post[m++] = c; // the map is monotone: equal children are adjacent
    }
  }
  postOff[n] = m;
  return finish(h.level, h.from, h.to, children, ranges, node.keys.slice(), postOff, post.slice(0, m));
}

/**
 * Erasure: removes child `child` from the postings of `keys` (sorted), drops keys left without a child,
 * and optionally renames the child (its rewritten node's object key). Retention: `dropAll` (by child
 * index) removes every pointer to those children too (`child` -1 for none). Returns the new node and the
 * keys it no longer holds at all (what the parent must drop for this node in turn).
 */
export function dropPointers(
  node: IndexNode,
  child: number,
  keys: Float64Array,
  rename?: number | string,
  dropAll?: Uint8Array,
): { node: IndexNode; gone: Float64Array } {
  const n = node.keys.length;
  const outKeys = new Float64Array(n);
  const postOff = new Uint32Array(n + 1);
  const post = new Uint32Array(node.post.length);
  const gone: number[] = [];
  let k = 0;
  let m = 0;
  let j = 0;
  for (let i = 0; i < n; i++) {
    const key = node.keys[i]!;
    while (j < keys.length && keys[j]! < key) j++;
    const drop = j < keys.length && keys[j] === key;
    const m0 = m;
    for (let p = node.postOff[i]!; p < node.postOff[i + 1]!; p++) {
      const c = node.post[p]!;
      if ((!drop || c !== child) && dropAll?.[c] !== 1) post[m++] = c;
    }
    if (m === m0) {
      gone.push(key);
      continue;
    }
    outKeys[k] = key;
    postOff[k] = m0;
    k++;
  }
  postOff[k] = m;
  const h = node.header;
  const children = [...h.children];
  if (rename !== undefined) children[child] = rename;
  return {
    node: finish(
      h.level,
      h.from,
      h.to,
      children,
      h.ranges,
      outKeys.slice(0, k),
      postOff.slice(0, k + 1),
      post.slice(0, m),
    ),
    gone: Float64Array.from(gone),
  };
}

/** The child indices that hold `key` (empty when absent). */
export function lookup(node: IndexNode, key: number): Uint32Array {
  if (node instanceof StoredNode && !node.whole) return node.find(key);
  if (!bloomHas(node.bloom, key)) return new Uint32Array(0);
  const keys = node.keys;
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= keys.length || keys[lo] !== key) return new Uint32Array(0);
  return node.post.subarray(node.postOff[lo]!, node.postOff[lo + 1]!);
}

/**
 * A node read from its bytes (`decodeNode`): checked whole when read, but its arrays are made only when
 * something asks for them, and `lookup` reads the bytes where they are. The bytes an object store returns
 * sit after its own header, at any alignment, and a Float64Array needs 8: copying a 4 MB node to aligned
 * memory cost more than checking it (1.8 against 0.8 ms), and a search needs a few words of it (the
 * filter's probes, a binary search, one pointer list).
 */
class StoredNode implements IndexNode {
  private dv: DataView;
  private readonly postOffAt: number;
  private readonly postAt: number;
  private readonly bloomAt: number;
  private keysArr: Float64Array | undefined;
  private postOffArr: Uint32Array | undefined;
  private postArr: Uint32Array | undefined;
  private bloomArr: Uint32Array | undefined;

  /** `body` is the node's bytes after its header, already checked. */
  constructor(
    readonly header: NodeHeader,
    private body: Uint8Array,
  ) {
    this.dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    this.postOffAt = header.n * 8;
    this.postAt = this.postOffAt + (header.n + 1) * 4;
    this.bloomAt = this.postAt + header.m * 4;
  }

  /** Bytes [at, at + len) of the body as their own aligned buffer (a view when they are aligned already). */
  private section(at: number, len: number): { buffer: ArrayBufferLike; offset: number } {
    const o = this.body.byteOffset + at;
    if (o % 8 === 0) return { buffer: this.body.buffer, offset: o };
    // a copy by hand: `body` may be a Buffer, whose slice() is a view of its (pooled) memory, not a copy
    const copy = new Uint8Array(len);
    copy.set(this.body.subarray(at, at + len));
    return { buffer: copy.buffer, offset: 0 };
  }

  get keys(): Float64Array {
    if (!this.keysArr) {
      const { buffer, offset } = this.section(0, this.header.n * 8);
      this.keysArr = new Float64Array(buffer, offset, this.header.n);
      this.release();
    }
    return this.keysArr;
  }

  get postOff(): Uint32Array {
    if (!this.postOffArr) {
      const { buffer, offset } = this.section(this.postOffAt, (this.header.n + 1) * 4);
      this.postOffArr = new Uint32Array(buffer, offset, this.header.n + 1);
      this.release();
    }
    return this.postOffArr;
  }

  get post(): Uint32Array {
    if (!this.postArr) {
      const { buffer, offset } = this.section(this.postAt, this.header.m * 4);
      this.postArr = new Uint32Array(buffer, offset, this.header.m);
      this.release();
    }
    return this.postArr;
  }

  get bloom(): Uint32Array {
    if (!this.bloomArr) {
      const { buffer, offset } = this.section(this.bloomAt, this.header.w * 4);
      this.bloomArr = new Uint32Array(buffer, offset, this.header.w);
      this.release();
    }
    return this.bloomArr;
  }

  /**
   * Whether all four arrays are made (merges, compaction and the indexer read them): the bytes are then
   * let go, so a cached node is not held twice, and `lookup` uses the arrays.
   */
  get whole(): boolean {
    return !!(this.keysArr && this.postOffArr && this.postArr && this.bloomArr);
  }

  private release(): void {
    if (this.whole) {
      this.body = new Uint8Array(0);
      this.dv = new DataView(this.body.buffer);
    }
  }

  /** `lookup` on the bytes: the filter's probes, a binary search of the keys, one pointer list copied. */
  find(key: number): Uint32Array {
    const dv = this.dv;
    const mask = this.header.w * 32 - 1;
    const h1 = bloomH1(key);
    const h2 = bloomH2(key);
    for (let i = 0; i < bloomHashes; i++) {
      const b = (h1 + Math.imul(i, h2)) & mask;
      if ((dv.getUint32(this.bloomAt + (b >>> 5) * 4, true) & (1 << (b & 31))) === 0)
        return new Uint32Array(0);
    }
    const n = this.header.n;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (dv.getFloat64(mid * 8, true) < key) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= n || dv.getFloat64(lo * 8, true) !== key) return new Uint32Array(0);
    const a = dv.getUint32(this.postOffAt + lo * 4, true);
    const b = dv.getUint32(this.postOffAt + (lo + 1) * 4, true);
    if (!(a <= b && b <= this.header.m))
      throw new Error(`index node: pointers [${a}, ${b}) of key ${lo} are outside its ${this.header.m}`);
    const out = new Uint32Array(b - a);
    for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(this.postAt + (a + i) * 4, true);
    return out;
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function bodyCheck(body: Uint8Array): string {
  const w = hash64Words(checkKey, body);
  return w[1]!.toString(16).padStart(8, '0') + w[0]!.toString(16).padStart(8, '0');
}

/**
 * Keys in a page of an HLN2 node: `nodePageKeys`, or more when that would make more than `nodePagesMax`
 * pages (a directory entry is 20 bytes: at most 80 KiB of directory).
 */
export const nodePageKeys = 512;
export const nodePagesMax = 4096;

function pageKeysFor(n: number): number {
  return Math.max(nodePageKeys, Math.ceil(n / nodePagesMax));
}

/** "HLN2" | u32 headerLen | u32 directoryLen | u32 0 | u64 check. */
const prefix2 = 24;
const dirEntry = 20;

/** Serializes a node: as HLN1 (leaves: what servers and agents of before read) or HLN2 (paged). */
export function encodeNode(
  node: IndexNode,
  version: 1 | 2 = 1,
  /** HLN2: keys a page (tests; default `pageKeysFor` the node's keys). */
  pageKeys?: number,
): Uint8Array {
  const { keys, postOff, post, bloom } = node;
  if (bloom.length === 0)
    throw new Error('encodeNode: the node has no filter (a part of a merge, not a node to store)');
  if (version === 2) return encodeNode2(node, pageKeys);
  const bodyLen = keys.byteLength + postOff.byteLength + post.byteLength + bloom.byteLength;
  const body = new Uint8Array(bodyLen);
  let o = 0;
  for (const arr of [keys, postOff, post, bloom]) {
    body.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), o);
    o += arr.byteLength;
  }
  node.header.check = bodyCheck(body);
  const hdr = enc.encode(JSON.stringify(node.header));
  const start = (8 + hdr.length + 7) & ~7;
  const out = new Uint8Array(start + bodyLen);
  out.set([0x48, 0x4c, 0x4e, 0x31]);
  new DataView(out.buffer).setUint32(4, hdr.length, true);
  out.set(hdr, 8);
  out.set(body, start);
  return out;
}

function checkWords(bytes: Uint8Array): [number, number] {
  const w = hash64Words(checkKey, bytes);
  return [w[0]!, w[1]!];
}

function encodeNode2(node: IndexNode, pageKeys?: number): Uint8Array {
  const { keys, postOff, post, bloom } = node;
  const n = keys.length;
  const K = pageKeys ?? pageKeysFor(n);
  if (!Number.isInteger(K) || K < 1) throw new Error(`encodeNode: ${K} keys a page`);
  const P = Math.ceil(n / K);
  const pagesLen = n * 8 + (n + P) * 4 + post.length * 4;
  const header: NodeHeader = { ...node.header, n, m: post.length, w: bloom.length, pageKeys: K, pages: P };
  const bloomBytes = new Uint8Array(bloom.buffer, bloom.byteOffset, bloom.byteLength);
  header.check = bodyCheck(bloomBytes);
  node.header.check = header.check;
  const hdr = enc.encode(JSON.stringify(header));
  const dl = P * dirEntry;
  const pagesAt = prefix2 + hdr.length + dl;
  const out = new Uint8Array(pagesAt + pagesLen + bloom.byteLength);
  const dv = new DataView(out.buffer);
  out.set([0x48, 0x4c, 0x4e, 0x32]);
  dv.setUint32(4, hdr.length, true);
  dv.setUint32(8, dl, true);
  out.set(hdr, prefix2);
  let o = pagesAt;
  for (let p = 0; p < P; p++) {
    const a = p * K;
    const c = Math.min(K, n - a);
    const start = o;
    out.set(new Uint8Array(keys.buffer, keys.byteOffset + a * 8, c * 8), o);
    o += c * 8;
    // the node's offsets as they are: no loop over the keys (the indexer encodes a node once, before the
    // loop would be optimized: offsets made relative, key by key, cost it 20% more CPU)
    const base = postOff[a]!;
    out.set(new Uint8Array(postOff.buffer, postOff.byteOffset + a * 4, (c + 1) * 4), o);
    o += (c + 1) * 4;
    const end = postOff[a + c]!;
    out.set(new Uint8Array(post.buffer, post.byteOffset + base * 4, (end - base) * 4), o);
    o += (end - base) * 4;
    const e = prefix2 + hdr.length + p * dirEntry;
    dv.setFloat64(e, keys[a]!, true);
    dv.setUint32(e + 8, o - pagesAt, true);
    const [lo, hi] = checkWords(out.subarray(start, o));
    dv.setUint32(e + 12, lo, true);
    dv.setUint32(e + 16, hi, true);
  }
  out.set(bloomBytes, o);
  const [lo, hi] = checkWords(out.subarray(prefix2, pagesAt));
  dv.setUint32(16, lo, true);
  dv.setUint32(20, hi, true);
  return out;
}

/** The format of a node's bytes: 1 (HLN1), 2 (HLN2), or 0 (not a node). Needs the first 4 bytes. */
export function nodeVersion(bytes: Uint8Array): 0 | 1 | 2 {
  if (bytes.length < 4 || bytes[0] !== 0x48 || bytes[1] !== 0x4c || bytes[2] !== 0x4e) return 0;
  return bytes[3] === 0x31 ? 1 : bytes[3] === 0x32 ? 2 : 0;
}

/**
 * An HLN2 node's header and directory, read from the node's first bytes (`NodeDirectory.bytesNeeded` of
 * them): which page may hold a key, where each page lies in the object, and each page's check.
 */
export class NodeDirectory {
  /** Bytes of the header and directory (what a cache holds for it). */
  readonly bytes: number;
  /** Where page 0 starts in the object. */
  readonly pagesAt: number;
  private readonly firstKeys: Float64Array;
  /** Page p is bytes [ends[p], ends[p + 1]) from pagesAt. */
  private readonly ends: Uint32Array;
  private readonly checks: Uint32Array;

  private constructor(
    readonly header: NodeHeader,
    readonly where: string,
    dir: DataView,
    pagesAt: number,
  ) {
    const P = header.pages ?? 0;
    this.pagesAt = pagesAt;
    this.bytes = pagesAt;
    this.firstKeys = new Float64Array(P);
    this.ends = new Uint32Array(P + 1);
    this.checks = new Uint32Array(2 * P);
    for (let p = 0; p < P; p++) {
      this.firstKeys[p] = dir.getFloat64(p * dirEntry, true);
      this.ends[p + 1] = dir.getUint32(p * dirEntry + 8, true);
      this.checks[2 * p] = dir.getUint32(p * dirEntry + 12, true);
      this.checks[2 * p + 1] = dir.getUint32(p * dirEntry + 16, true);
      if (this.ends[p + 1]! < this.ends[p]!) throw new Error(`${where}: page ${p} ends before it starts`);
    }
  }

  /** How many of the node's first bytes hold its header and directory (`first`: at least 24 of them). */
  static bytesNeeded(first: Uint8Array, where: string): number {
    if (nodeVersion(first) !== 2 || first.length < prefix2)
      throw new Error(`${where}: not an HLN2 index node (bad magic or too short)`);
    const dv = new DataView(first.buffer, first.byteOffset, first.byteLength);
    return prefix2 + dv.getUint32(4, true) + dv.getUint32(8, true);
  }

  /** Parses and checks the header and directory from the node's first `bytesNeeded` bytes (or more). */
  static parse(bytes: Uint8Array, where: string, objectBytes?: number): NodeDirectory {
    const need = NodeDirectory.bytesNeeded(bytes, where);
    if (bytes.length < need) throw new Error(`${where}: directory needs ${need} bytes, got ${bytes.length}`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const hl = dv.getUint32(4, true);
    const dl = dv.getUint32(8, true);
    // written as 0 (and outside the checksum): anything else is a format this reader does not know
    const flags = dv.getUint32(12, true);
    if (flags !== 0)
      throw new Error(`${where}: HLN2 prefix word 3 is ${flags}, expected 0 (a newer format?)`);
    const [lo, hi] = checkWords(bytes.subarray(prefix2, need));
    if (lo !== dv.getUint32(16, true) || hi !== dv.getUint32(20, true))
      throw new Error(`${where}: directory checksum mismatch (corrupt node)`);
    const header = JSON.parse(dec.decode(bytes.subarray(prefix2, prefix2 + hl))) as NodeHeader;
    const P = header.pages ?? -1;
    const K = header.pageKeys ?? 0;
    if (P < 0 || dl !== P * dirEntry || K < 1 || P !== Math.ceil(header.n / K))
      throw new Error(
        `${where}: directory of ${dl} bytes does not fit ${P} pages of ${K} of ${header.n} keys`,
      );
    const d = new NodeDirectory(
      header,
      where,
      new DataView(bytes.buffer, bytes.byteOffset + prefix2 + hl, dl),
      need,
    );
    const pagesLen = header.n * 8 + (header.n + P) * 4 + header.m * 4;
    if (d.ends[P] !== pagesLen)
      throw new Error(`${where}: pages end at ${d.ends[P]}, the header says ${pagesLen}`);
    if (objectBytes !== undefined && objectBytes !== need + pagesLen + header.w * 4)
      throw new Error(`${where}: size ${objectBytes}, header says ${need + pagesLen + header.w * 4}`);
    return d;
  }

  get pages(): number {
    return this.firstKeys.length;
  }

  /** Where the last page ends in the object (the filter follows). */
  get pagesEnd(): number {
    return this.pagesAt + this.ends[this.pages]!;
  }

  /** The page that holds `key` if the node has it (-1: below its first key, or no keys). */
  pageOf(key: number): number {
    const f = this.firstKeys;
    let lo = 0;
    let hi = f.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (f[mid]! <= key) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Page p's byte range in the object: [start, end). */
  range(p: number): [number, number] {
    return [this.pagesAt + this.ends[p]!, this.pagesAt + this.ends[p + 1]!];
  }

  /** Checks page p's bytes (exactly its range) and returns it, or fails naming node and page. */
  page(p: number, bytes: Uint8Array): NodePage {
    const K = this.header.pageKeys!;
    const a = p * K;
    const c = Math.min(K, this.header.n - a);
    const what = `${this.where}: page ${p} of ${this.pages} (keys ${a}-${a + c - 1})`;
    const [lo, hi] = checkWords(bytes);
    if (
      bytes.length !== this.ends[p + 1]! - this.ends[p]! ||
      lo !== this.checks[2 * p] ||
      hi !== this.checks[2 * p + 1]
    )
      throw new Error(`${what} fails its checksum: the node is corrupt`);
    return new NodePage(bytes, c, what);
  }
}

/** One checked page of an HLN2 node: a binary search of its keys, one pointer list. */
export class NodePage {
  private readonly dv: DataView;
  private readonly postAt: number;
  private readonly m: number;
  /** The page's first pointer offset (its pointers are post[base, base + m) of the node). */
  readonly base: number;

  constructor(
    readonly bytes: Uint8Array,
    private readonly c: number,
    private readonly what: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.postAt = c * 12 + 4;
    this.m = (bytes.length - this.postAt) / 4;
    this.base = this.dv.getUint32(c * 8, true);
    if (this.m !== this.dv.getUint32(c * 8 + c * 4, true) - this.base)
      throw new Error(`${what}: its pointers do not fill it`);
  }

  /** The child indices that hold `key` (empty when absent). */
  find(key: number): Uint32Array {
    const dv = this.dv;
    let lo = 0;
    let hi = this.c;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (dv.getFloat64(mid * 8, true) < key) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= this.c || dv.getFloat64(lo * 8, true) !== key) return new Uint32Array(0);
    const offAt = this.c * 8;
    const a = dv.getUint32(offAt + lo * 4, true) - this.base;
    const b = dv.getUint32(offAt + (lo + 1) * 4, true) - this.base;
    if (!(a <= b && b <= this.m))
      throw new Error(`${this.what}: pointers [${a}, ${b}) of a key are outside its ${this.m}`);
    const out = new Uint32Array(b - a);
    for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(this.postAt + (a + i) * 4, true);
    return out;
  }
}

/** An HLN2 node read whole: every page checked and copied into the node's arrays. */
function decodeNode2(bytes: Uint8Array, where: string): IndexNode {
  const d = NodeDirectory.parse(bytes, where, bytes.length);
  const h = d.header;
  const keys = new Float64Array(h.n);
  const keyBytes = new Uint8Array(keys.buffer);
  const postOff = new Uint32Array(h.n + 1);
  const postOffBytes = new Uint8Array(postOff.buffer);
  const post = new Uint32Array(h.m);
  const postBytes = new Uint8Array(post.buffer);
  const K = h.pageKeys!;
  let m = 0;
  for (let p = 0; p < d.pages; p++) {
    const [s, e] = d.range(p);
    const pg = d.page(p, bytes.subarray(s, e));
    const a = p * K;
    const c = Math.min(K, h.n - a);
    keyBytes.set(bytes.subarray(s, s + c * 8), a * 8);
    // the node's offsets as they are (a page whose first is not where the pages before it end is corrupt:
    // its checksum matched, so it was written so; read it as its own offsets, from its first)
    const offAt = s + c * 8;
    if (pg.base === m) postOffBytes.set(bytes.subarray(offAt, offAt + c * 4), a * 4);
    else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + offAt, (c + 1) * 4);
      for (let j = 0; j < c; j++) postOff[a + j] = m + dv.getUint32(j * 4, true) - pg.base;
    }
    const pm = (pg.bytes.length - c * 12 - 4) / 4;
    if (m + pm > h.m) throw new Error(`${where}: page ${p}'s pointers are past the header's ${h.m}`);
    postBytes.set(bytes.subarray(s + c * 12 + 4, e), m * 4);
    m += pm;
  }
  postOff[h.n] = m;
  if (m !== h.m) throw new Error(`${where}: ${m} pointers, the header says ${h.m}`);
  const bloomSrc = bytes.subarray(d.pagesEnd);
  if (bodyCheck(bloomSrc) !== h.check) throw new Error(`${where}: filter checksum mismatch (corrupt node)`);
  const bloom = new Uint32Array(h.w);
  new Uint8Array(bloom.buffer).set(bloomSrc);
  // the header keeps pageKeys and pages: what it was read from (a merge's result gets a header of its own)
  return { header: h, keys, postOff, post, bloom };
}

/** Parses a node (HLN1 or HLN2); throws saying what is wrong when the bytes are not a sound node. */
export function decodeNode(bytes: Uint8Array, where = 'index node'): IndexNode {
  const v = nodeVersion(bytes);
  if (v === 2) return decodeNode2(bytes, where);
  if (bytes.length < 8 || v !== 1) throw new Error(`${where}: not an index node (bad magic)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hl = dv.getUint32(4, true);
  if (8 + hl > bytes.length) throw new Error(`${where}: header length ${hl} is past the end`);
  const header = JSON.parse(dec.decode(bytes.subarray(8, 8 + hl))) as NodeHeader;
  const start = (8 + hl + 7) & ~7;
  const need = start + header.n * 8 + (header.n + 1) * 4 + header.m * 4 + header.w * 4;
  if (need !== bytes.length) throw new Error(`${where}: size ${bytes.length}, header says ${need}`);
  const body = bytes.subarray(start);
  if (bodyCheck(body) !== header.check) throw new Error(`${where}: checksum mismatch (corrupt node)`);
  return new StoredNode(header, body);
}
