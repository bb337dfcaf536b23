/**
 * Streaming readers for classic pcap (both byte orders, microsecond and nanosecond timestamps) and pcapng
 * (section header, interface description, enhanced and simple packet blocks), never holding more than one
 * block in memory. Malformed input ends the stream with a {@link CaptureError} saying where.
 * Formats: the tcpdump pcap file format and the IETF pcapng draft (draft-ietf-opsawg-pcapng).
 */
import type { Readable } from 'node:stream';

export class CaptureError extends Error {
  override name = 'CaptureError';
  constructor(
    readonly offset: number,
    detail: string,
  ) {
    super(`capture byte ${offset}: ${detail}`);
  }
}

/** The input ends inside a record or block: what a capture whose writer was stopped mid-record looks like. */
export class TruncatedCaptureError extends CaptureError {
  override name = 'TruncatedCaptureError';
}

export interface Packet {
  /** Capture time in microseconds since the epoch. */
  tsUs: number;
  linkType: number;
  data: Uint8Array;
  /** Length on the wire (may exceed data.length when the capture was truncated). */
  origLength: number;
}

/**
 * The readers' packets: one class, so every packet has the one shape from its constructor. (Object
 * literals take their shape from a boilerplate made from the first packets' values: when a later packet
 * claims a wire length of 2^30 or more, the field's representation moves from small integer to double, the
 * boilerplate's shape is deprecated, and each packet made from it afterwards was migrated on its first
 * read, 5,924 times in ndpi-mix-a's first pass.)
 */
class CapturedPacket implements Packet {
  constructor(
    readonly tsUs: number,
    readonly linkType: number,
    readonly data: Uint8Array,
    readonly origLength: number,
  ) {}
}

/** Largest block accepted (a guard against corrupt lengths). */
export const blockBytesMax = 16 * 2 ** 20;

/** Pulls exact byte counts out of a stream. */
class ByteReader {
  /** Unread input: `chunks[0]` from `pos` on, then the rest of `chunks`. */
  private chunks: Buffer[] = [];
  private pos = 0;
  private have = 0;
  offset = 0;
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>;
  private done = false;

  constructor(stream: Readable | AsyncIterable<Buffer>) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** The chunk the offsets `takeAt` returns point into. */
  current: Buffer = Buffer.alloc(0);

  /**
   * Consumes n bytes when the first buffered chunk holds them (no waiting) and returns where they start in
   * `current`, else -1: no view is made (the pcap reader's per-packet path reads headers in place).
   */
  takeAt(n: number): number {
    const c = this.chunks[0];
    if (!c || c.length - this.pos < n) return -1;
    const at = this.pos;
    this.current = c;
    this.consume(c, n);
    return at;
  }

  /** Consumes `n` bytes of the first chunk `c` (at most what it holds from `pos`). */
  private consume(c: Buffer, n: number): void {
    this.pos += n;
    if (this.pos === c.length) {
      this.chunks.shift();
      this.pos = 0;
    }
    this.have -= n;
    this.offset += n;
  }

  /** Exactly n bytes when the first buffered chunk holds them (no waiting), else undefined. */
  take(n: number): Buffer | undefined {
    const at = this.takeAt(n);
    return at < 0 ? undefined : this.current.subarray(at, at + n);
  }

  /** Exactly n bytes, or undefined at a clean end of input (before any of them); a partial read is an error. */
  async read(n: number): Promise<Buffer | undefined> {
    if (n === 0) return this.have === 0 && this.done ? undefined : Buffer.alloc(0);
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        // a stream may yield strings or plain Uint8Arrays (`Readable.from([bytes])`): read as Buffers (a
        // view, not a copy), which the record parsers read integers from
        const v: Buffer | Uint8Array | string = r.value;
        const b =
          typeof v === 'string'
            ? Buffer.from(v)
            : Buffer.isBuffer(v)
              ? v
              : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        if (b.length === 0) continue;
        this.chunks.push(b);
        this.have += b.length;
      }
    }
    if (this.have === 0 && this.done) return undefined;
    if (this.have < n)
      throw new TruncatedCaptureError(
        this.offset + this.have,
        `truncated: ${n} bytes needed, ${this.have} left`,
      );
    const fast = this.take(n);
    if (fast) return fast;
    // across chunks: the n bytes copied out of them, the rest of the last one left where it is (joining
    // the first chunk's tail to the whole next chunk copied every 1 MiB read chunk once, a record
    // straddling each boundary: 3% of a pass of ndpi-mix-a)
    const out = Buffer.allocUnsafe(n);
    for (let got = 0; got < n; ) {
      const c = this.chunks[0]!;
      const k = Math.min(n - got, c.length - this.pos);
      c.copy(out, got, this.pos, this.pos + k);
      got += k;
      this.consume(c, k);
    }
    return out;
  }
}

/**
 * Reads packets from a pcap or pcapng stream in batches: the packets that the input read so far holds
 * (a classic pcap's records in one read chunk, at most 256 at a time; a pcapng's one block), each batch
 * handed out before more input is awaited, so a consumer pays for one asynchronous step per batch instead of per packet.
 */
export async function* readCaptureBatches(
  stream: Readable | AsyncIterable<Buffer>,
): AsyncGenerator<Packet[]> {
  const r = new ByteReader(stream);
  const magic = await r.read(4);
  // no bytes at all is no capture (a writer killed before its header, a pipe that closed at once): it
  // read as a capture of no packets, and `strata ids` said nothing and exited 0
  if (!magic) throw new TruncatedCaptureError(0, 'empty input: no pcap or pcapng header');
  const m = magic.readUInt32LE(0);
  if (m === 0x0a0d0d0a) for await (const p of readPcapng(r, magic)) yield [p];
  else if (m === 0xa1b2c3d4 || m === 0xd4c3b2a1 || m === 0xa1b23c4d || m === 0x4d3cb2a1)
    yield* readPcap(r, magic);
  else throw new CaptureError(0, `not a pcap or pcapng file (magic 0x${magic.toString('hex')})`);
}

/**
 * {@link readCaptureBatches}, ending where the input ends inside a record instead of throwing (a capture
 * whose writer was stopped mid-record, as a killed tcpdump leaves it): the packets before it come out and
 * `cut.error` says where it ended. Every other fault still throws.
 */
export async function* readCaptureBatchesToCut(
  stream: Readable | AsyncIterable<Buffer>,
  cut: { error?: TruncatedCaptureError },
): AsyncGenerator<Packet[]> {
  try {
    yield* readCaptureBatches(stream);
  } catch (e) {
    if (!(e instanceof TruncatedCaptureError)) throw e;
    cut.error = e;
  }
}

/** Reads packets from a pcap or pcapng stream. */
export async function* readCapture(stream: Readable | AsyncIterable<Buffer>): AsyncGenerator<Packet> {
  for await (const batch of readCaptureBatches(stream)) yield* batch;
}

async function* readPcap(r: ByteReader, magic: Buffer): AsyncGenerator<Packet[]> {
  const m = magic.readUInt32LE(0);
  const le = m === 0xa1b2c3d4 || m === 0xa1b23c4d;
  const nano = m === 0xa1b23c4d || m === 0x4d3cb2a1;
  const h = await r.read(20);
  // the magic alone (a writer stopped before its header was out) failed as "Cannot read properties of undefined"
  if (!h)
    throw new TruncatedCaptureError(4, 'truncated file header: 20 bytes needed after the magic, 0 left');
  const u32 = le ? u32le : u32be;
  const linkType = u32(h, 16) & 0x0fffffff;
  let batch: Packet[] = [];
  for (;;) {
    const at = r.offset;
    // what is buffered is parsed in place without waiting; the batch goes out before the reader waits
    let po = r.takeAt(16);
    let ph: Uint8Array = r.current;
    if (po < 0) {
      if (batch.length > 0) yield batch;
      batch = [];
      const read = await r.read(16);
      if (!read) return;
      ph = read;
      po = 0;
    }
    const caplen = u32(ph, po + 8);
    const frac = u32(ph, po + 4);
    const tsUs = u32(ph, po) * 1e6 + (nano ? Math.floor(frac / 1000) : frac);
    const origLength = u32(ph, po + 12);
    if (caplen > blockBytesMax) {
      if (batch.length > 0) yield batch;
      throw new CaptureError(at, `packet record claims ${caplen} bytes`);
    }
    // the packet: a plain view of the chunk (a Buffer's subarray costs more to make)
    let data: Uint8Array;
    const dat = r.takeAt(caplen);
    if (dat >= 0) data = new Uint8Array(r.current.buffer, r.current.byteOffset + dat, caplen);
    else {
      if (batch.length > 0) yield batch;
      batch = [];
      // the input ending right after a record's header is a cut record too (it came out as an empty packet)
      const got = await r.read(caplen);
      if (!got) throw new TruncatedCaptureError(r.offset, `truncated: ${caplen} bytes needed, 0 left`);
      data = plainView(got);
    }
    batch.push(new CapturedPacket(tsUs, linkType, data, origLength));
    if (batch.length === batchPacketsMax) {
      yield batch;
      batch = [];
    }
  }
}

/**
 * Packets a classic pcap's batch holds at most (a 1 MiB read chunk of ndpi-mix-a holds about 2,700). A
 * batch's packets live until the batch is done with, so a young-generation collection in the middle of a
 * large one copied them all: 1.67 MB survived a scavenge on average in steady passes, 1.0 MB with batches
 * of 256 (V8's `--trace-gc-nvp`, `new_space_survived`).
 */
const batchPacketsMax = 256;

/**
 * A plain `Uint8Array` over a Buffer's bytes: every packet's data is one kind of array, so the code that
 * reads it (decoding, checksums) stays monomorphic. (A record split across read chunks came out as a
 * Buffer, whose map differs: each one, 13 a pass of ndpi-mix-a, deoptimized the decoder's optimized code
 * where it met one first.)
 */
function plainView(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

function u32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function u32be(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The latest time a Date holds, in microseconds since the epoch (ECMAScript: 8.64e15 ms). */
export const dateUsMax = 8.64e18;
/** The pcapng block types whose fixed fields are read: name and the fields' bytes (after type and length). */
const fixedFields: Record<number, [string, number]> = {
  1: ['interface description', 8],
  3: ['simple packet', 4],
  6: ['enhanced packet', 20],
};

async function* readPcapng(r: ByteReader, first: Buffer): AsyncGenerator<Packet> {
  let le = true;
  let interfaces: { linkType: number; unitsPerSec: number }[] = [];
  let pending: Buffer | undefined = first;
  for (;;) {
    const at = r.offset - (pending ? 4 : 0);
    const typeBuf: Buffer | undefined = pending ?? (await r.read(4));
    pending = undefined;
    if (!typeBuf) return;
    const lenBuf = await r.read(4);
    if (!lenBuf) throw new TruncatedCaptureError(at, 'truncated block header');
    let type = typeBuf.readUInt32LE(0);
    if (type === 0x0a0d0d0a) {
      // section header: the byte-order magic decides the endianness of everything in the section
      const bom = await r.read(4);
      if (!bom) throw new TruncatedCaptureError(at, 'truncated section header');
      le = bom.readUInt32LE(0) === 0x1a2b3c4d;
      if (!le && bom.readUInt32BE(0) !== 0x1a2b3c4d) throw new CaptureError(at + 8, 'bad byte-order magic');
      const len = le ? lenBuf.readUInt32LE(0) : lenBuf.readUInt32BE(0);
      if (len < 28 || len > blockBytesMax || len % 4)
        throw new CaptureError(at, `bad section header length ${len}`);
      // the input ending right after the byte-order magic is a cut block too (it ended the capture silently)
      const rest = await r.read(len - 12);
      if (!rest) throw new TruncatedCaptureError(at, 'truncated section header');
      const trailer = le ? rest.readUInt32LE(rest.length - 4) : rest.readUInt32BE(rest.length - 4);
      if (trailer !== len)
        throw new CaptureError(at, `section header length ${len} at its start, ${trailer} at its end`);
      interfaces = [];
      continue;
    }
    if (!le) type = typeBuf.readUInt32BE(0);
    const len = le ? lenBuf.readUInt32LE(0) : lenBuf.readUInt32BE(0);
    if (len < 12 || len > blockBytesMax || len % 4) throw new CaptureError(at, `bad block length ${len}`);
    const body = await r.read(len - 8);
    if (!body) throw new TruncatedCaptureError(at, 'truncated block');
    const u16 = (o: number) => (le ? body.readUInt16LE(o) : body.readUInt16BE(o));
    const u32 = (o: number) => (le ? body.readUInt32LE(o) : body.readUInt32BE(o));
    // the block's length is written at both ends: a difference is a damaged length, whatever the reader
    // took as the block (it read on from a wrong place without a word)
    const trailer = u32(len - 12);
    if (trailer !== len)
      throw new CaptureError(at, `block length ${len} at its start, ${trailer} at its end`);
    // each block type's fixed fields (a shorter block was read past its end: a RangeError, not a capture error)
    const fixed = fixedFields[type];
    if (fixed && len - 12 < fixed[1])
      throw new CaptureError(at, `${fixed[0]} block of ${len} bytes: its fixed fields need ${fixed[1] + 12}`);
    if (type === 1) {
      // interface description: link type, then options (if_tsresol = 9)
      let unitsPerSec = 1e6;
      for (let p = 8; p + 4 <= body.length - 4; ) {
        const code = u16(p);
        const olen = u16(p + 2);
        if (code === 0) break;
        if (code === 9 && olen >= 1) {
          const v = body[p + 4]!;
          unitsPerSec = v & 0x80 ? 2 ** (v & 0x7f) : 10 ** (v & 0x7f);
        }
        p += 4 + Math.ceil(olen / 4) * 4;
      }
      interfaces.push({ linkType: u16(0), unitsPerSec });
    } else if (type === 6) {
      const iface = interfaces[u32(0)];
      if (!iface) throw new CaptureError(at, `packet for undeclared interface ${u32(0)}`);
      const caplen = u32(12);
      if (20 + caplen > body.length - 4)
        throw new CaptureError(at, `packet data (${caplen} bytes) overruns its block`);
      const ts = u32(4) * 2 ** 32 + u32(8);
      const tsUs = Math.floor(ts / (iface.unitsPerSec / 1e6));
      // past what a Date holds (the year 275760): a corrupt timestamp, which printing an alert of threw on
      if (!(tsUs <= dateUsMax))
        throw new CaptureError(
          at,
          `packet timestamp ${ts} (${iface.unitsPerSec} units a second) is past the year 275760`,
        );
      yield new CapturedPacket(tsUs, iface.linkType, plainView(body.subarray(20, 20 + caplen)), u32(16));
    } else if (type === 3) {
      const iface = interfaces[0];
      if (!iface) throw new CaptureError(at, 'simple packet block before any interface');
      const orig = u32(0);
      yield new CapturedPacket(
        0,
        iface.linkType,
        plainView(body.subarray(4, 4 + Math.min(orig, body.length - 8))),
        orig,
      );
    }
    // other block types (name resolution, statistics, custom) are skipped
  }
}

/** A classic pcap file header (little-endian, version 2.4, microsecond timestamps). */
function pcapFileHeader(linkType: number, snapLen: number): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(snapLen, 16);
  h.writeUInt32LE(linkType, 20);
  return h;
}

/** Microseconds a classic pcap record's time holds: 32-bit seconds from 1970 (to 2106). */
const pcapTsUsEnd = 2 ** 32 * 1e6;

/** A classic pcap record header. */
function pcapRecordHeader(tsUs: number, capLen: number, origLen: number): Buffer {
  // a time a pcapng holds (past 2106) or an API caller's (negative) failed as Node's "value is out of
  // range", naming nothing; NaN was written as 1970 and an original length of NaN as 0
  if (!(tsUs >= 0 && tsUs < pcapTsUsEnd))
    throw new RangeError(
      `pcap output: packet time ${tsUs} us is outside what a classic pcap holds (1970 to 2106, 32-bit seconds)`,
    );
  if (!(origLen <= 0xffffffff))
    throw new RangeError(`pcap output: original length ${origLen} is not a 32-bit byte count`);
  const r = Buffer.alloc(16);
  r.writeUInt32LE(Math.floor(tsUs / 1e6), 0);
  r.writeUInt32LE(Math.floor(tsUs % 1e6), 4);
  r.writeUInt32LE(capLen, 8);
  r.writeUInt32LE(Math.max(origLen, capLen), 12);
  return r;
}

/** A whole classic pcap file in memory (demos and tests build captures with it). */
export function encodePcap(
  packets: { tsUs: number; data: Uint8Array }[],
  linkType = 1,
  snapLen = 65_535,
): Buffer {
  const parts = [pcapFileHeader(linkType, snapLen)];
  for (const p of packets)
    parts.push(pcapRecordHeader(p.tsUs, p.data.length, p.data.length), Buffer.from(p.data));
  return Buffer.concat(parts);
}

/**
 * Writes a classic pcap file (little-endian, microsecond timestamps) of one link type, streamed: `write`
 * waits when the file falls behind, so memory stays bounded by the stream's buffer.
 */
export class PcapWriter {
  private header = false;
  private linkType: number | undefined;
  packets = 0;

  constructor(
    private readonly out: NodeJS.WritableStream,
    /** Snapshot length in the file header. */
    private readonly snapLen = 262_144,
  ) {}

  /** Whether the file header is written (by `start` or the first `write`). */
  get started(): boolean {
    return this.header;
  }

  /** Writes the file header for `linkType` (so a file with no packets is still a valid pcap). */
  async start(linkType: number): Promise<void> {
    if (this.header) return;
    this.linkType = linkType;
    this.header = true;
    await this.put(pcapFileHeader(linkType, this.snapLen));
  }

  /** Appends one packet; a link type other than the file's is an error (one pcap, one link type). */
  async write(p: { tsUs: number; linkType: number; data: Uint8Array; origLength?: number }): Promise<void> {
    if (!this.header) await this.start(p.linkType);
    else if (p.linkType !== this.linkType)
      throw new Error(
        `pcap output: link type ${p.linkType} after ${this.linkType} (one pcap file holds one link type)`,
      );
    await this.put(pcapRecordHeader(p.tsUs, p.data.length, p.origLength ?? p.data.length));
    await this.put(Buffer.from(p.data));
    this.packets++;
  }

  private put(b: Buffer): Promise<void> | undefined {
    if (this.out.write(b)) return undefined;
    return new Promise((res) => this.out.once('drain', () => res()));
  }
}
