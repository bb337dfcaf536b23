/**
 * TCP stream reassembly for one direction of a session: segments are placed by sequence number (32-bit,
 * wrapping: positions are kept as 53-bit stream offsets computed from signed 32-bit distances), in-order
 * data is appended in constant work (the fast path of Pigasus, Zhao et al. OSDI'20, section 5), and
 * out-of-order segments wait in a bounded, offset-sorted list (the slow path) until the hole before them
 * is filled. Released bytes are never changed again; a retransmission of released bytes is counted and
 * dropped.
 *
 *      offset 0 = first data byte (ISN + 1)       released        contiguous end           buffered
 *      |================ released ================|----- pending ----|   hole   |--- out of order ---|
 *
 * Overlaps among bytes not yet released are resolved byte by byte with a target-based policy: which copy
 * the receiving host keeps depends on its TCP stack. The policies and the hosts they model follow Novak and
 * Sturges, "Target-Based TCP Stream Reassembly" (Sourcefire, 2007), which Snort's stream5/stream_tcp
 * `policy` and Suricata's `host-os-policy` are based on. Comparing a new segment N with an earlier one O
 * that it overlaps (start and end of each as sent), N's bytes win in the overlap when:
 *
 * | policy                                   | N wins when                                   |
 * | ---------------------------------------- | --------------------------------------------- |
 * | first, vista                             | never (the first copy stays)                  |
 * | last                                     | always                                        |
 * | bsd, macos, irix, hpux10, windows, win2k3| N starts before O                             |
 * | linux                                    | N starts before O, or at O's start and ends after it |
 * | old-linux                                | N starts before O, or at O's start and does not end before it |
 * | solaris, old-solaris, hpux11             | N starts before O and does not end before it  |
 * | bsd-right (Suricata's name)              | N ends after O                                |
 *
 * The suricata-verify cases eve-payload-01/02 and eve-overlap-payload-01/02/04 pin the windows and
 * old-linux rows on exact and partial overlaps.
 *
 * Bounds: at most `segmentsMax` buffered pieces and `bufferBytesMax` buffered bytes per direction, plus a
 * budget shared by all streams (`ReassemblyBudget`); a segment that does not fit is dropped and counted.
 * Nothing beyond `depthBytes` of the stream is kept (Suricata's stream.reassembly.depth).
 */

/** The bytes of a latin1 text (each character's low byte), as a plain Uint8Array. */
export function latin1Bytes(t: string): Uint8Array {
  return new Uint8Array(Buffer.from(t, 'latin1'));
}

/**
 * A copy of bytes [start, end) of `b`. (Not `slice`: on a Node Buffer, which is what capture readers hand
 * out, `slice` is a view, and a view kept would both pin the reader's memory and let writes reach it.)
 */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return new Uint8Array(b.subarray(start, end));
}

/** The parts one after the other in one array of `total` bytes (the part itself when there is one). */
export function concatBytes(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const overlapPolicies = [
  'first',
  'last',
  'bsd',
  'bsd-right',
  'linux',
  'old-linux',
  'windows',
  'windows2k3',
  'vista',
  'solaris',
  'old-solaris',
  'hpux10',
  'hpux11',
  'irix',
  'macos',
] as const;
export type OverlapPolicy = (typeof overlapPolicies)[number];

/** Whether a new segment [ns, ne) wins over an earlier one [os, oe) where they overlap. */
export function newDataWins(policy: OverlapPolicy, ns: number, ne: number, os: number, oe: number): boolean {
  switch (policy) {
    case 'first':
    case 'vista':
      return false;
    case 'last':
      return true;
    case 'linux':
      return ns < os || (ns === os && ne > oe);
    case 'old-linux':
      return ns < os || (ns === os && ne >= oe);
    case 'solaris':
    case 'old-solaris':
    case 'hpux11':
      return ns < os && ne >= oe;
    case 'bsd-right':
      return ne > oe;
    default:
      return ns < os;
  }
}

/** A block that in-order pieces are copied into one after another; `live`: its pieces still held. */
interface Slab {
  bytes: Uint8Array;
  used: number;
  live: number;
}
const slabSize = 32 * 1024;
/** The arena released chunks of several pieces are cut from (`ReassemblyBudget.releaseBytes`). */
const releaseArenaBytes = 64 * 1024;

/**
 * Memory shared by every stream of an engine: `bytes`, the bytes held in out-of-order and pending buffers
 * (at most `bytesMax`), and `slabBytes`, the slabs in-order pieces are copied into (at most `slabBytesMax`,
 * a quarter of `bytesMax` unless given; so reassembly holds at most 1.25 x `bytesMax`).
 *
 * Why slabs: a typed array over 64 bytes gets a zero-filled backing store of its own, about 550 ns here
 * whatever its size up to a few KiB, so most of an in-order 1,460-byte segment's time went to its copy's
 * allocation. A fast-path piece is instead a view of a 32 KiB slab, filled front to back and never reused:
 * a slab is charged from its creation until it is no longer the one being filled and none of its pieces is
 * held, so a piece held long (a receiver that never acknowledges) keeps its slab charged, and once the
 * slabs reach their bound pieces are copied as before. A released chunk may be such a view: whoever keeps
 * it keeps the slab's memory alive (the engine copies what it keeps into its stream windows).
 */
/** Stream bytes all flows together buffer at most by default (`reassemblyMemcapBytes`). */
export const reassemblyMemcapDefault = 64 * 2 ** 20;

export class ReassemblyBudget {
  bytes = 0;
  slabBytes = 0;
  /** The highest `bytes + slabBytes` seen. */
  peakBytes = 0;
  private slab: Slab | undefined;
  readonly slabBytesMax: number;
  /** The arena released chunks are cut from now, and how much of it is given out (`releaseBytes`). */
  private arena = new Uint8Array(0);
  private arenaUsed = releaseArenaBytes;
  constructor(
    readonly bytesMax = reassemblyMemcapDefault,
    slabBytesMax?: number,
  ) {
    this.slabBytesMax = slabBytesMax ?? Math.floor(bytesMax / 4);
  }
  take(n: number): boolean {
    if (this.bytes + n > this.bytesMax) return false;
    this.bytes += n;
    this.notePeak();
    return true;
  }
  give(n: number): void {
    this.bytes -= n;
  }

  private notePeak(): void {
    if (this.bytes + this.slabBytes > this.peakBytes) this.peakBytes = this.bytes + this.slabBytes;
  }

  /** A copy of `src` for `piece` to hold: a view of the current slab where it fits, else an array of its own. */
  hold(piece: Piece, src: Uint8Array): void {
    const n = src.length;
    if (n > 64 && n <= slabSize / 4) {
      let s = this.slab;
      if (!s || s.used + n > slabSize) s = this.nextSlab();
      if (s) {
        const d = s.bytes.subarray(s.used, s.used + n);
        d.set(src);
        s.used += n;
        s.live++;
        piece.data = d;
        piece.slab = s;
        return;
      }
    }
    piece.data = new Uint8Array(src);
  }

  /**
   * `n` bytes for a released chunk of several pieces (their contents follow: nothing of the old bytes is
   * seen): a part of a shared arena while it has room, a new arena (64 KiB) when not, an array of its own
   * above 16 KiB. An arena is never written twice: one is kept alive, uncharged, by any chunk still held
   * (a released chunk was never charged), and each costs one allocation where every chunk made its own.
   */
  releaseBytes(n: number): Uint8Array {
    if (n > releaseArenaBytes / 4) return new Uint8Array(n);
    if (this.arenaUsed + n > releaseArenaBytes) {
      this.arena = new Uint8Array(releaseArenaBytes);
      this.arenaUsed = 0;
    }
    const out = this.arena.subarray(this.arenaUsed, this.arenaUsed + n);
    this.arenaUsed += n;
    return out;
  }
  /** `piece` is no longer held: its slab is uncharged once it is retired and holds nothing. */
  drop(piece: Piece): void {
    const s = piece.slab;
    if (s === undefined) return;
    piece.slab = undefined;
    if (--s.live === 0 && s !== this.slab) this.slabBytes -= slabSize;
  }

  private nextSlab(): Slab | undefined {
    const old = this.slab;
    this.slab = undefined;
    if (old && old.live === 0) this.slabBytes -= slabSize;
    if (this.slabBytes + slabSize > this.slabBytesMax) return undefined;
    this.slabBytes += slabSize;
    this.notePeak();
    this.slab = { bytes: new Uint8Array(slabSize), used: 0, live: 0 };
    return this.slab;
  }
}

export interface StreamOptions {
  policy?: OverlapPolicy;
  /**
   * Bytes of the stream reassembled at most (default 1 MiB; 0 for no limit: Suricata's
   * stream.reassembly.depth and its 0, where it meant no reassembly at all until 2026-12-05).
   */
  depthBytes?: number;
  /** Bytes held (pending + out of order) per direction at most (default 256 KiB). */
  bufferBytesMax?: number;
  /** Buffered pieces per direction at most (default 1,024). */
  segmentsMax?: number;
  budget?: ReassemblyBudget;
}

/**
 * What `insert` did with a segment: `overflow`, not kept for the direction's own bounds (bytes, pieces);
 * `memcap`, not kept for the engine's reassembly memcap (`ReassemblyBudget`: what Suricata's
 * stream.reassembly.memcap-policy acts on).
 */
export type InsertResult =
  | 'in-order'
  | 'out-of-order'
  | 'retransmit'
  | 'overflow'
  | 'memcap'
  | 'beyond-depth'
  | 'empty';

export interface StreamStats {
  inOrder: number;
  outOfOrder: number;
  retransmits: number;
  /** Segments that overlapped buffered data with different bytes. */
  overlapsDifferent: number;
  overflows: number;
  beyondDepth: number;
}

/**
 * A buffered piece: bytes at stream offset `off`, and the extent of the segment they came from; `slab`: the
 * budget's slab its bytes are in, if they are.
 */
interface Piece {
  off: number;
  data: Uint8Array;
  os: number;
  oe: number;
  slab?: Slab | undefined;
}

/** A run of bytes handed out, at stream offset `off`; `gap` is true when bytes before it were missing. */
export interface Chunk {
  off: number;
  data: Uint8Array;
  gap: boolean;
}

export class StreamReassembler {
  /** Stream offset of the first byte not yet released. */
  released = 0;
  /** Sequence number of stream offset `released`. */
  private releasedSeq: number;
  private pieces: Piece[] = [];
  /** End of the bytes contiguous from the release point. */
  private contig = 0;
  bufferedBytes = 0;
  readonly policy: OverlapPolicy;
  /** Bytes of the stream kept at most (`StreamOptions.depthBytes`; Infinity: no depth). */
  get depthBytes(): number {
    return this.depth;
  }
  private depth: number;
  readonly bufferBytesMax: number;
  readonly segmentsMax: number;
  private readonly budget: ReassemblyBudget;
  readonly stats: StreamStats = {
    inOrder: 0,
    outOfOrder: 0,
    retransmits: 0,
    overlapsDifferent: 0,
    overflows: 0,
    beyondDepth: 0,
  };

  /** `baseSeq`: the sequence number of the stream's first data byte (the ISN + 1). */
  constructor(baseSeq: number, opts: StreamOptions = {}) {
    this.releasedSeq = baseSeq >>> 0;
    this.policy = opts.policy ?? 'windows';
    this.depth = opts.depthBytes === 0 ? Number.POSITIVE_INFINITY : (opts.depthBytes ?? 2 ** 20);
    this.bufferBytesMax = opts.bufferBytesMax ?? 256 * 1024;
    this.segmentsMax = opts.segmentsMax ?? 1024;
    this.budget = opts.budget ?? new ReassemblyBudget();
    if (!overlapPolicies.includes(this.policy))
      throw new RangeError(`unknown overlap policy '${this.policy}'`);
  }

  /** Stream offset of sequence number `seq` (the nearest one, modulo 2^32, to the release point). */
  offsetOf(seq: number): number {
    return this.released + ((seq - this.releasedSeq) | 0);
  }

  /** End of the data that is contiguous from the release point. */
  contiguousEnd(): number {
    return this.contig;
  }

  /** Moves the contiguous end over pieces that now touch it. */
  private advanceContig(): void {
    for (const p of this.pieces) {
      if (p.off > this.contig) break;
      this.contig = Math.max(this.contig, p.off + p.data.length);
    }
  }

  /**
   * Whether the last `insert` overlapped bytes already released or held (so the copy kept may differ from
   * the segment's: what inline normalization looks at).
   */
  overlapped = false;

  /** From now on the stream has no depth: kept whole (a connection found to be SMB after it began). */
  keepWhole(): void {
    this.depth = Number.POSITIVE_INFINITY;
  }

  /** Adds a segment's payload. */
  insert(seq: number, payload: Uint8Array): InsertResult {
    this.overlapped = false;
    if (payload.length === 0) return 'empty';
    let off = this.offsetOf(seq);
    let data = payload;
    const segStart = off;
    const segEnd = off + data.length;
    if (off < this.released) this.overlapped = true;
    if (segEnd <= this.released) {
      this.stats.retransmits++;
      return 'retransmit';
    }
    if (off < this.released) {
      data = data.subarray(this.released - off);
      off = this.released;
    }
    if (off >= this.depth) {
      this.stats.beyondDepth++;
      return 'beyond-depth';
    }
    if (off + data.length > this.depth) data = data.subarray(0, this.depth - off);
    const last = this.pieces[this.pieces.length - 1];
    const lastEnd = last ? last.off + last.data.length : this.released;
    if (off === this.contig && lastEnd === this.contig) {
      // fast path: the next bytes in order and nothing buffered beyond them: constant work
      const full = this.reserve(data.length, 1);
      if (full) return full;
      const piece: Piece = { off, data, os: segStart, oe: segEnd, slab: undefined };
      this.budget.hold(piece, data);
      this.pieces.push(piece);
      this.contig += data.length;
      this.stats.inOrder++;
      return 'in-order';
    }
    return this.insertSlow(off, data, segStart, segEnd);
  }

  /** Room for `bytes` more in `pieces` more pieces; else why not (counted in `overflows`). */
  private reserve(bytes: number, pieces: number): 'overflow' | 'memcap' | undefined {
    const why =
      this.pieces.length + pieces > this.segmentsMax || this.bufferedBytes + bytes > this.bufferBytesMax
        ? 'overflow'
        : !this.budget.take(bytes)
          ? 'memcap'
          : undefined;
    if (why) this.stats.overflows++;
    else this.bufferedBytes += bytes;
    return why;
  }

  /** The index of the first piece that ends after stream offset `off` (pieces are sorted and disjoint). */
  private firstEndingAfter(off: number): number {
    let lo = 0;
    let hi = this.pieces.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const p = this.pieces[mid]!;
      if (p.off + p.data.length <= off) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private insertSlow(off: number, data: Uint8Array, segStart: number, segEnd: number): InsertResult {
    const end = off + data.length;
    const lo = this.firstEndingAfter(off);
    const fresh: Piece[] = [];
    let cursor = off;
    let differs = false;
    for (let i = lo; cursor < end; i++) {
      const p = this.pieces[i];
      if (!p || p.off >= end) {
        fresh.push({
          off: cursor,
          data: copyBytes(data, cursor - off, end - off),
          os: segStart,
          oe: segEnd,
          slab: undefined,
        });
        break;
      }
      if (p.off > cursor) {
        fresh.push({
          off: cursor,
          data: copyBytes(data, cursor - off, p.off - off),
          os: segStart,
          oe: segEnd,
          slab: undefined,
        });
        cursor = p.off;
      }
      const ovEnd = Math.min(end, p.off + p.data.length);
      this.overlapped = true;
      const wins = newDataWins(this.policy, segStart, segEnd, p.os, p.oe);
      for (let x = cursor; x < ovEnd; x++) {
        const nb = data[x - off]!;
        if (p.data[x - p.off] !== nb) {
          differs = true;
          if (wins) p.data[x - p.off] = nb;
        }
      }
      cursor = ovEnd;
    }
    if (differs) this.stats.overlapsDifferent++;
    if (fresh.length === 0) {
      this.stats.retransmits++;
      return 'retransmit';
    }
    const bytes = fresh.reduce((n, p) => n + p.data.length, 0);
    const full = this.reserve(bytes, fresh.length);
    if (full) return full;
    for (const f of fresh) {
      let at = lo;
      while (at < this.pieces.length && this.pieces[at]!.off < f.off) at++;
      this.pieces.splice(at, 0, f);
    }
    const inOrder = off <= this.contig;
    if (inOrder) {
      this.advanceContig();
      this.stats.inOrder++;
    } else this.stats.outOfOrder++;
    return inOrder ? 'in-order' : 'out-of-order';
  }

  /**
   * Hands out the contiguous bytes from the release point up to stream offset `limit` (exclusive), in one
   * chunk; undefined when there are none.
   */
  release(limit = Number.POSITIVE_INFINITY): Chunk | undefined {
    const end = Math.min(limit, this.contig);
    if (end <= this.released) return undefined;
    const head = this.pieces[0]!;
    if (head.off === this.released && head.off + head.data.length === end) {
      // the common in-order case: exactly one held piece goes out, handed over without a copy
      this.pieces.shift();
      this.budget.drop(head);
      const n = head.data.length;
      this.releasedSeq = (this.releasedSeq + n) >>> 0;
      this.released = end;
      this.bufferedBytes -= n;
      this.budget.give(n);
      return { off: head.off, data: head.data, gap: false };
    }
    const out = this.budget.releaseBytes(end - this.released);
    let n = 0;
    let freed = 0;
    while (this.pieces.length > 0) {
      const p = this.pieces[0]!;
      if (p.off >= end) break;
      const take = Math.min(p.data.length, end - p.off);
      out.set(p.data.subarray(0, take), p.off - this.released);
      n = Math.max(n, p.off - this.released + take);
      if (take === p.data.length) {
        this.pieces.shift();
        this.budget.drop(p);
        freed += take;
      } else {
        p.data = p.data.subarray(take);
        p.off += take;
        freed += take;
        break;
      }
    }
    const chunk: Chunk = { off: this.released, data: out.subarray(0, n), gap: false };
    this.releasedSeq = (this.releasedSeq + (end - this.released)) >>> 0;
    this.released = end;
    this.bufferedBytes -= freed;
    this.budget.give(freed);
    return chunk;
  }

  /** Hands out everything still buffered, in order, skipping holes (end of the session). */
  flush(): Chunk[] {
    const out: Chunk[] = [];
    for (;;) {
      const first = this.pieces[0];
      if (!first) break;
      const gap = first.off > this.released;
      if (gap) {
        this.releasedSeq = (this.releasedSeq + (first.off - this.released)) >>> 0;
        this.released = first.off;
        this.contig = first.off;
        this.advanceContig();
      }
      const c = this.release();
      if (!c) break;
      c.gap = gap;
      out.push(c);
    }
    return out;
  }

  /**
   * Copies the held (not yet released) bytes of stream offsets [off, off + into.length) over `into`, where
   * it differs; returns how many bytes changed. Released bytes are not here (the caller keeps them).
   */
  readHeld(off: number, into: Uint8Array): number {
    const end = off + into.length;
    const lo = this.firstEndingAfter(off);
    let changed = 0;
    for (let i = lo; i < this.pieces.length; i++) {
      const p = this.pieces[i]!;
      if (p.off >= end) break;
      const to = Math.min(end, p.off + p.data.length);
      for (let x = Math.max(off, p.off); x < to; x++) {
        const b = p.data[x - p.off]!;
        if (into[x - off] !== b) {
          into[x - off] = b;
          changed++;
        }
      }
    }
    return changed;
  }

  /** Bytes held now (pending in order + out of order). */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Gives back all memory (the flow is gone). */
  dispose(): void {
    this.budget.give(this.bufferedBytes);
    this.bufferedBytes = 0;
    for (const p of this.pieces) this.budget.drop(p);
    this.pieces = [];
    this.contig = this.released;
  }
}
