/**
 * DCE/RPC inside SMB named pipes, which is how Windows carries most of its RPC on ports 139 and 445
 * (ncacn_np): what a client writes to a pipe is the client's side of a connection-oriented DCE/RPC stream
 * and what it reads back is the server's, so each pipe is followed with its own `DceSession` and the rule
 * options `dce_iface`, `dce_opnum`, `dce_stub_data` see the requests in it, as Snort's DCE/RPC SMB
 * inspector gives them.
 *
 * Framing: NetBIOS session service messages (RFC 1002 4.3.1: a type byte, then the length; MS-SMB2 2.1's
 * direct TCP transport uses the same 4 bytes with a 24-bit length), each holding one SMB1 message
 * (MS-CIFS 2.2.3.1, "\xffSMB", with its AndX chain) or SMB2/3 messages (MS-SMB2 2.2.1, "\xfeSMB", with
 * their compound chain). Read:
 *
 * - SMB1: TREE_CONNECT_ANDX responses (service "IPC": a pipe tree), WRITE_ANDX (raw-mode message writes
 *   lose their 2-byte length) and WRITE requests, TRANSACTION TransactNmPipe requests and their
 *   TRANSACTION_SECONDARY parts (data in order of displacement), and the READ_ANDX, READ and TRANSACTION
 *   responses that answer requests on a pipe (matched by MID).
 * - SMB2/3: TREE_CONNECT responses (share type pipe), WRITE requests, IOCTL FSCTL_PIPE_TRANSCEIVE requests
 *   and responses, and READ responses that answer a READ request (matched by MessageId; an interim
 *   STATUS_PENDING keeps the request waiting).
 *
 * A write on a tree known to be a disk or printer share is not followed; on a tree whose connection was not
 * seen (a capture that starts mid-session) a file is followed and its `DceSession` stops at the first bytes
 * that are not a DCE/RPC header. Encrypted (SMB3 transform) and compressed messages cannot be read. The
 * bytes of a message are held until it is whole, up to `smbMessageHoldMax` (the rest of a longer message is
 * skipped and the pipes it writes see a gap), and charged to the reassembly budget by the caller; its first
 * `smbPeekBytes` decide whether it is held at all (not a lone file transfer's write or read answer, not an
 * unreadable message). A stream gap, or bytes that are not NetBIOS framing, end the direction.
 */

import { type DceRequest, DceSession, dceRequest } from './dcerpc.js';

/** The server ports whose TCP connections are read as SMB (Snort's defaults: NetBIOS session, direct SMB). */
export const smbPorts: ReadonlySet<number> = new Set([139, 445]);
/** Bytes of one NetBIOS message held at most (an SMB1 buffer is at most 64 KiB; SMB2 pipes write less). */
export const smbMessageHoldMax = 65_536 + 128;
/** Pipes (open files followed) per connection at most; past it the least recently used is let go. */
export const smbPipesMax = 16;
/**
 * Trees remembered, and requests waiting for their answer (and SMB1 transactions for their secondary
 * parts), per connection at most (the oldest let go).
 */
export const smbTreesMax = 64;
export const smbPendingMax = 64;
/** Bytes of a message that spans deliveries read before deciding to hold it (an SMB2 WRITE's FileId). */
export const smbPeekBytes = 96;
/** Commands followed in one SMB1 AndX chain or one SMB2 compound message at most. */
export const smbChainMax = 16;

const statusOk = 0;
/** STATUS_BUFFER_OVERFLOW: a pipe message longer than the read; the data returned is good. */
const statusBufferOverflow = 0x80000005;
/** STATUS_PENDING: an SMB2 interim response; the final one follows with the same MessageId. */
const statusPending = 0x00000103;
const fsctlPipeTransceive = 0x0011c017;
/** SMB1 TRANSACTION subcommand TransactNmPipe (MS-CIFS 2.2.5.6). */
const transactNmPipe = 0x0026;
/** SMB1 WRITE_ANDX WriteMode bits: raw mode and start of message (the data starts with a 2-byte length). */
const writeRawStart = 0x000c;

/** SMB1 commands whose parameters start with an AndX block (command, reserved, offset). */
const andx = new Set([0x24, 0x2d, 0x2e, 0x2f, 0x73, 0x74, 0x75, 0xa2]);

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** A pipe being followed: its DCE/RPC session and, per direction, whether bytes were lost before. */
interface Pipe {
  dce: DceSession;
  gap: [boolean, boolean];
}

/**
 * One SMB1 command of a message's AndX chain: its code, where its words start and how many, where its bytes
 * start and how many, the header's TID and MID, and whether the message was cut.
 */
interface Smb1Command {
  cmd: number;
  w: number;
  wc: number;
  bytesAt: number;
  bc: number;
  tid: number;
  mid: number;
  cut: boolean;
}

/** An SMB1 transaction on a pipe waiting for its secondary parts: the data still to come, where. */
interface Transaction {
  pipe: string;
  displacement: number;
  total: number;
}

/**
 * One SMB connection (both directions): the pipes its writes, reads and transactions move bytes through,
 * and the DCE/RPC requests found in them.
 */
export class SmbSession {
  private readonly dirs = [new NbssDirection(), new NbssDirection()];
  /** Pipes by file id ("1:" and the FID for SMB1, the 16-byte FileId in hex for SMB2). */
  private readonly pipes = new Map<string, Pipe>();
  /** Trees by id: true for a pipe tree (IPC$), false for a disk or printer share. */
  private readonly trees = new Map<number, boolean>();
  /** Requests waiting for the answer that carries the pipe's bytes back: file id by MID / MessageId. */
  private readonly pending = new Map<string, string>();
  /** SMB1 TransactNmPipe requests whose data continues in TRANSACTION_SECONDARY messages, by MID. */
  private readonly transactions = new Map<number, Transaction>();
  /**
   * In an SMB2 compound request under way, the file its previous command named: a related command's FileId
   * of all ones (MS-SMB2 3.2.4.1.4) means that one. A CREATE names its file `smb2Created` of its MessageId
   * until its answer gives the FileId (`smb2Opened`).
   */
  private chainFile: string | undefined;
  /**
   * Per direction, the pipe whose raw data the next message is (SMB1 WRITE_RAW from the client, READ_RAW
   * from the server: MS-CIFS 2.2.4.25, 2.2.4.22): a NetBIOS message of bare data, no SMB header.
   */
  private readonly raw: [string | undefined, string | undefined] = [undefined, undefined];
  private out: DceRequest[] = [];
  /**
   * The message under way: where in the delivery its held part ends, and whether it lies wholly in the
   * delivery (then its requests' stubs are at offsets there; else they are all at `at`).
   */
  private done = { at: 0, inPlace: false };
  /** App-layer errors of the pipes' DCE/RPC (`DceSession.errors`), added up as they come. */
  private pipeErrors = 0;

  /**
   * App-layer errors for the exception policy (`EngineOptions.exceptionPolicy`): a direction's NetBIOS
   * framing broken after its messages (`NbssDirection.errors`), and a followed pipe's DCE/RPC stopping on
   * a header that is not DCE/RPC's after its PDUs. Only grows.
   */
  get errors(): number {
    return this.dirs[0]!.errors + this.dirs[1]!.errors + this.pipeErrors;
  }

  /** Bytes held between deliveries (the caller charges them to its memory budget). */
  get heldBytes(): number {
    let n = this.dirs[0]!.heldBytes + this.dirs[1]!.heldBytes;
    for (const p of this.pipes.values()) n += p.dce.heldBytes;
    return n;
  }

  /** Lets the held bytes go and follows the connection no further. */
  drop(): void {
    for (const d of this.dirs) d.drop();
    for (const p of this.pipes.values()) p.dce.drop();
    this.pipes.clear();
  }

  /**
   * The DCE/RPC requests (and calls reassembled from fragments) that the SMB messages completed in `data`
   * carry, the next bytes of direction `dir` (0: client to server). Each has its stub (`stub`); its offsets
   * are where the stub lies in `data` when the message is wholly in it, else where the message ends there.
   */
  feed(dir: 0 | 1, data: Uint8Array, gap: boolean): DceRequest[] {
    const d = this.dirs[dir]!;
    if (gap) d.drop();
    this.out = [];
    d.feed(
      data,
      (m, cut, at, inPlace) => {
        this.done = { at, inPlace };
        this.message(dir, m, cut);
      },
      (head) => this.wanted(dir, head),
    );
    return this.out;
  }

  /**
   * Whether a message that spans deliveries is worth holding, by its first bytes: not one that cannot be
   * read (encrypted, compressed, not SMB), nor a lone write to a disk share or to a file whose bytes are
   * not DCE/RPC, nor a lone read's answer that no followed pipe waits for (file transfers, mostly).
   */
  private wanted(dir: 0 | 1, h: Uint8Array): boolean {
    const raw = this.raw[dir];
    if (raw !== undefined) {
      // bare data: held for a followed pipe, else passed over (a file's raw read) and expected no more
      if (this.pipes.get(raw)?.dce.following(dir)) return true;
      this.raw[dir] = undefined;
      return false;
    }
    if (h.length < 4 || h[1] !== 0x53 || h[2] !== 0x4d || h[3] !== 0x42) return false;
    if (h[0] === 0xff) {
      // the first command's words follow the header's 32 bytes and the word count
      const w = 33;
      if (h.length < w + 28 || m1Chained(h)) return true;
      const cmd = h[4]!;
      if (dir === 0 && cmd === 0x2f) return this.takes(u16(h, 24), smb1Key(h, w + 4));
      if (dir === 1 && cmd === 0x2e) return this.awaited(smb1Key(h, 30));
      return true;
    }
    if (h[0] !== 0xfe) return false;
    if (h.length < 96 || u32(h, 20) !== 0) return true;
    const cmd = u16(h, 12);
    const async = (u32(h, 16) & 2) !== 0;
    if (dir === 0 && cmd === 0x09 && !async) return this.takes(u32(h, 36), smb2FileId(h, 64 + 16));
    if (dir === 1 && cmd === 0x08) return this.awaited(smb2MessageId(h, 0));
    return true;
  }

  /** Whether a write on tree `tree` to file `key` may carry DCE/RPC: not a disk's, nor a file's that stopped. */
  private takes(tree: number, key: string): boolean {
    const p = this.pipes.get(key);
    return this.trees.get(tree) !== false && (!p || p.dce.following(0));
  }

  /** Whether the answer to request `id` carries bytes back to a followed pipe (else it is forgotten). */
  private awaited(id: string): boolean {
    const p = this.pending.get(id);
    if (p !== undefined && this.pipes.get(p)?.dce.following(1)) return true;
    this.pending.delete(id);
    return false;
  }

  /** One NetBIOS session message (`cut`: only its first bytes, the rest skipped). */
  private message(dir: 0 | 1, m: Uint8Array, cut: boolean): void {
    const raw = this.raw[dir];
    if (raw !== undefined) {
      // bare data for a raw write or read (a cut one: the pipe sees the gap)
      this.raw[dir] = undefined;
      this.write(raw, dir, m, 0, cut ? m.length + 1 : m.length);
      return;
    }
    if (m.length < 4 || m[1] !== 0x53 || m[2] !== 0x4d || m[3] !== 0x42) return;
    if (m[0] === 0xff) this.smb1(dir, m, cut);
    else if (m[0] === 0xfe) this.smb2(dir, m);
  }

  /** An SMB1 message: its commands along the AndX chain. */
  private smb1(dir: 0 | 1, m: Uint8Array, cut: boolean): void {
    if (m.length < 33) return;
    const reply = (m[9]! & 0x80) !== 0;
    if (reply !== (dir === 1)) return;
    const status = u32(m, 5);
    if (reply && status !== statusOk && status !== statusBufferOverflow) {
      this.pending.delete(smb1Key(m, 30));
      // a raw write refused: no bare data follows
      if (m[4] === 0x1d) this.raw[0] = undefined;
      return;
    }
    const tid = u16(m, 24);
    const mid = u16(m, 30);
    let cmd = m[4]!;
    let off = 32;
    for (let k = 0; k < smbChainMax && off < m.length; k++) {
      const wc = m[off]!;
      const w = off + 1;
      const bytesAt = w + 2 * wc + 2;
      if (bytesAt > m.length) return;
      const bc = u16(m, w + 2 * wc);
      const c: Smb1Command = { cmd, w, wc, bytesAt, bc, tid, mid, cut };
      if (reply) this.smb1Reply(m, c);
      else this.smb1Request(m, c);
      if (!andx.has(cmd) || wc < 2) return;
      const next = m[w]!;
      const nextOff = u16(m, w + 2);
      if (next === 0xff || nextOff <= off) return;
      cmd = next;
      off = nextOff;
    }
  }

  private smb1Request(m: Uint8Array, c: Smb1Command): void {
    const { cmd, w, wc, bytesAt, bc, tid, mid, cut } = c;
    if (cmd === 0x04 && wc >= 3) {
      // CLOSE: the FID may be given to another file next
      this.close(smb1Key(m, w));
      return;
    }
    if (this.trees.get(tid) === false) return;
    if (cmd === 0x2f && wc >= 12) {
      // WRITE_ANDX: FID, WriteMode, DataLengthHigh, DataLength, DataOffset (from the header)
      let start = u16(m, w + 22);
      let len = dataLength(m, start, u16(m, w + 20), u16(m, w + 18), cut);
      if ((u16(m, w + 14) & writeRawStart) === writeRawStart) {
        start += 2;
        len -= 2;
      }
      this.write(smb1Key(m, w + 4), 0, m, start, len);
    } else if (cmd === 0x0b && wc >= 5 && bc >= 3 && m[bytesAt] === 0x01) {
      // WRITE: FID; the data block (buffer format 1, length) in the bytes
      this.write(smb1Key(m, w), 0, m, bytesAt + 3, u16(m, bytesAt + 1));
    } else if (cmd === 0x1d && (wc === 12 || wc === 14)) {
      // WRITE_RAW (MS-CIFS 2.2.4.25): FID, CountOfBytes; DataLength and DataOffset of the part in this
      // message; the rest comes as the client's next message, bare
      const key = smb1Key(m, w);
      const first = u16(m, w + 20);
      this.write(key, 0, m, u16(m, w + 22), first);
      if (u16(m, w + 2) > first) this.raw[0] = key;
    } else if (cmd === 0x1a && (wc === 8 || wc === 10)) {
      // READ_RAW (MS-CIFS 2.2.4.22): the server's next message is the FID's data, bare
      this.raw[1] = smb1Key(m, w);
    } else if (cmd === 0x2c && (wc === 6 || wc === 12) && bc >= 1) {
      // WRITE_AND_CLOSE (MS-CIFS 2.2.4.40): FID, CountOfBytesToWrite; the data after one pad byte; then
      // the FID is closed (a call sent so gets no answer, but the server reads it)
      const key = smb1Key(m, w);
      this.write(key, 0, m, bytesAt + 1, u16(m, w + 2));
      this.close(key);
    } else if ((cmd === 0x2e && wc >= 10) || (cmd === 0x0a && wc >= 5)) {
      // READ_ANDX, READ: the answer carries the pipe's bytes back
      this.expect(smb1Key(m, 30), smb1Key(m, cmd === 0x2e ? w + 4 : w));
    } else if (cmd === 0x25 && wc >= 16 && m[w + 26]! >= 2 && u16(m, w + 28) === transactNmPipe) {
      // TRANSACTION, TransactNmPipe: setup words (subcommand, FID); data count and offset
      const pipe = smb1Key(m, w + 30);
      const total = u16(m, w + 2);
      const count = u16(m, w + 22);
      this.expect(smb1Key(m, 30), pipe);
      this.transactions.delete(mid);
      if (total > count) {
        if (this.transactions.size >= smbPendingMax)
          this.transactions.delete(this.transactions.keys().next().value!);
        this.transactions.set(mid, { pipe, displacement: count, total });
      }
      this.write(pipe, 0, m, u16(m, w + 24), count);
    } else if (cmd === 0x26 && wc >= 8) {
      // TRANSACTION_SECONDARY: the next part of the data, at its displacement
      const t = this.transactions.get(mid);
      if (!t) return;
      const count = u16(m, w + 10);
      const at = u16(m, w + 14);
      if (at !== t.displacement) {
        // out of order or repeated: the pipe's stream is not what the server will read
        this.transactions.delete(mid);
        const p = this.pipes.get(t.pipe);
        if (p) p.gap[0] = true;
        return;
      }
      t.displacement += count;
      if (t.displacement >= t.total) this.transactions.delete(mid);
      this.write(t.pipe, 0, m, u16(m, w + 12), count);
    }
  }

  private smb1Reply(m: Uint8Array, c: Smb1Command): void {
    const { cmd, w, wc, bytesAt, bc, tid, cut } = c;
    if (cmd === 0x75) {
      // TREE_CONNECT_ANDX: the service the tree is ("IPC" for named pipes, "A:" a disk, "LPT1:" ...)
      if (wc < 2 || bc < 3) return;
      const ipc = m[bytesAt] === 0x49 && m[bytesAt + 1] === 0x50 && m[bytesAt + 2] === 0x43;
      this.tree(tid, ipc);
      return;
    }
    const midKey = smb1Key(m, 30);
    const pipe = this.pending.get(midKey);
    if (pipe === undefined) return;
    if (cmd === 0x2e && wc >= 12) {
      // READ_ANDX: DataLength, DataOffset, DataLengthHigh
      this.pending.delete(midKey);
      const start = u16(m, w + 12);
      this.write(pipe, 1, m, start, dataLength(m, start, u16(m, w + 10), u16(m, w + 14), cut));
    } else if (cmd === 0x0a && wc >= 5 && bc >= 3 && m[bytesAt] === 0x01) {
      this.pending.delete(midKey);
      this.write(pipe, 1, m, bytesAt + 3, u16(m, bytesAt + 1));
    } else if (cmd === 0x25 && wc >= 10) {
      // TRANSACTION (one of possibly several parts): DataCount, DataOffset, DataDisplacement
      const total = u16(m, w + 2);
      const count = u16(m, w + 12);
      if (u16(m, w + 16) + count >= total) this.pending.delete(midKey);
      this.write(pipe, 1, m, u16(m, w + 14), count);
    }
  }

  /** An SMB2/3 message: each header of its compound chain. */
  private smb2(dir: 0 | 1, m: Uint8Array): void {
    let off = 0;
    this.chainFile = undefined;
    for (let k = 0; k < smbChainMax && off + 64 <= m.length; k++) {
      if (m[off] !== 0xfe || m[off + 1] !== 0x53 || m[off + 2] !== 0x4d || m[off + 3] !== 0x42) return;
      if (u16(m, off + 4) !== 64) return;
      const flags = u32(m, off + 16);
      const reply = (flags & 1) !== 0;
      const next = u32(m, off + 20);
      if (reply === (dir === 1)) this.smb2One(reply, m, off);
      if (next < 64 || off + next >= m.length) return;
      off += next;
    }
  }

  /** One SMB2 command at `m[h..]`: offsets in it count from its header. */
  private smb2One(reply: boolean, m: Uint8Array, h: number): void {
    const cmd = u16(m, h + 12);
    const status = u32(m, h + 8);
    const async = (u32(m, h + 16) & 2) !== 0;
    const tree = async ? undefined : u32(m, h + 36);
    const id = smb2MessageId(m, h);
    const b = h + 64;
    const related = (u32(m, h + 16) & 4) !== 0;
    // a request's file: a related command's all-ones FileId is the previous command's file
    const fileId = (at: number) => {
      if (at + 16 > m.length) return undefined;
      let f = smb2FileId(m, at);
      if (!reply && related && f === smb2FileIdLast && this.chainFile !== undefined) f = this.chainFile;
      if (!reply) this.chainFile = f;
      return f;
    };
    if (!reply) {
      if (cmd === 0x05) {
        // CREATE: its file has no FileId until the answer
        this.chainFile = smb2Created(id);
        return;
      }
      if (cmd === 0x06 && b + 24 <= m.length) {
        // CLOSE: FileId
        this.close(fileId(b + 8)!);
        return;
      }
      if (tree !== undefined && this.trees.get(tree) === false) return;
      if (cmd === 0x09 && b + 32 <= m.length) {
        // WRITE: DataOffset, Length, FileId
        const f = fileId(b + 16);
        if (f) this.write(f, 0, m, h + u16(m, b + 2), u32(m, b + 4));
      } else if (cmd === 0x08 && b + 32 <= m.length) {
        // READ: the answer (by MessageId) carries the pipe's bytes
        const f = fileId(b + 16);
        if (f) this.expect(id, f);
      } else if (cmd === 0x0b && b + 32 <= m.length && u32(m, b + 4) === fsctlPipeTransceive) {
        // IOCTL FSCTL_PIPE_TRANSCEIVE: FileId, InputOffset, InputCount; the answer by MessageId too
        const f = fileId(b + 8);
        if (f) {
          this.write(f, 0, m, h + u32(m, b + 24), u32(m, b + 28));
          this.expect(id, f);
        }
      }
      return;
    }
    if (status === statusPending) return;
    const pipe = this.pending.get(id);
    this.pending.delete(id);
    if (status !== statusOk && status !== statusBufferOverflow) return;
    if (cmd === 0x03 && b + 3 <= m.length && tree !== undefined) {
      // TREE_CONNECT: ShareType (1 disk, 2 pipe, 3 printer)
      this.tree(tree, m[b + 2] === 2);
    } else if (cmd === 0x05 && b + 80 <= m.length) {
      // CREATE: the FileId (after the times, sizes and attributes) of a file related commands used
      this.smb2Opened(smb2Created(id), smb2FileId(m, b + 64));
    } else if (cmd === 0x08 && pipe !== undefined && b + 8 <= m.length) {
      // READ: DataOffset (one byte), DataLength
      this.write(pipe, 1, m, h + m[b + 2]!, u32(m, b + 4));
    } else if (cmd === 0x0b && b + 40 <= m.length && u32(m, b + 4) === fsctlPipeTransceive) {
      // IOCTL: OutputOffset, OutputCount; the request's file (its FileId may have been a related one's)
      const f = pipe ?? fileId(b + 8);
      if (f) this.write(f, 1, m, h + u32(m, b + 32), u32(m, b + 36));
    }
  }

  /** A CREATE's answer: the pipe its related commands opened as `created` is file `key` from now on. */
  private smb2Opened(created: string, key: string): void {
    const p = this.pipes.get(created);
    if (p !== undefined) {
      this.pipes.delete(created);
      this.close(key);
      this.pipes.set(key, p);
    }
    for (const [id, f] of this.pending) if (f === created) this.pending.set(id, key);
  }

  private close(key: string): void {
    this.pipes.get(key)?.dce.drop();
    this.pipes.delete(key);
  }

  private tree(id: number, pipe: boolean): void {
    if (!this.trees.has(id) && this.trees.size >= smbTreesMax)
      this.trees.delete(this.trees.keys().next().value!);
    this.trees.set(id, pipe);
  }

  private expect(id: string, pipe: string): void {
    this.pending.delete(id);
    if (this.pending.size >= smbPendingMax) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(id, pipe);
  }

  /**
   * `len` bytes at `m[start..]` go through pipe `key` in direction `dir`: its DCE/RPC session reads them.
   * Bytes past the message's end (a cut message, or a length that lies) are lost: the pipe sees a gap.
   */
  private write(key: string, dir: 0 | 1, m: Uint8Array, start: number, len: number): void {
    if (len <= 0 || start < 0 || start >= m.length) return;
    let p = this.pipes.get(key);
    if (p) {
      // the pipes in order of last use: the one let go for a new pipe is the least recently used
      this.pipes.delete(key);
    } else {
      // only a client's write opens a pipe to follow: a read of a pipe whose writes were not seen is not
      if (dir === 1) return;
      if (this.pipes.size >= smbPipesMax) this.close(this.pipes.keys().next().value!);
      p = { dce: new DceSession(), gap: [false, false] };
    }
    this.pipes.set(key, p);
    const end = Math.min(m.length, start + len);
    const gap = p.gap[dir];
    p.gap[dir] = start + len > m.length;
    const errors = p.dce.errors;
    const found = p.dce.feed(dir, m.subarray(start, end), gap);
    this.pipeErrors += p.dce.errors - errors;
    for (const r of found) {
      const stub = r.stub ?? m.subarray(start + r.stubStart, start + r.stubEnd);
      const { at, inPlace } = this.done;
      const from = at - m.length + start;
      this.out.push(
        dceRequest(
          r.uuid,
          r.versionMajor,
          r.opnum,
          r.first,
          r.little,
          inPlace ? from + r.stubStart : at,
          inPlace ? from + r.stubEnd : at,
          stub,
          r.reassembled,
        ),
      );
    }
  }
}

/**
 * An SMB1 read's or write's data length: DataLengthHigh is reserved unless large reads and writes were
 * negotiated, so it counts only where the data can be that long (the message holds it, or was cut).
 */
function dataLength(m: Uint8Array, start: number, low: number, high: number, cut: boolean): number {
  const long = low + high * 0x10000;
  return cut || start + long <= m.length ? long : low;
}

/** Whether an SMB1 message's first command (one with an AndX block) chains another. */
function m1Chained(h: Uint8Array): boolean {
  return andx.has(h[4]!) && h[32]! >= 2 && h[33] !== 0xff;
}

/** Map keys: an SMB1 FID or MID at `m[at]`; the MessageId of the SMB2 header at `m[h]`; an SMB2 FileId. */
function smb1Key(m: Uint8Array, at: number): string {
  return `1:${u16(m, at)}`;
}

function smb2MessageId(m: Uint8Array, h: number): string {
  return `2:${u32(m, h + 24)}:${u32(m, h + 28)}`;
}

function smb2FileId(m: Uint8Array, at: number): string {
  return hex(m, at, 16);
}

/** An SMB2 FileId of all ones: in a related command, the file of the command before it. */
const smb2FileIdLast = 'f'.repeat(32);

/** The file a CREATE opens until its answer gives its FileId, by the CREATE's MessageId. */
function smb2Created(messageId: string): string {
  return `create:${messageId}`;
}

function hex(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let k = 0; k < n; k++) s += (b[at + k]! < 16 ? '0' : '') + b[at + k]!.toString(16);
  return s;
}

/** NetBIOS session service framing of one direction: whole messages (or their first bytes) in order. */
class NbssDirection {
  private stopped = false;
  /** Whether a session message (type 0) was read. */
  private read = false;
  /** Times the framing broke (a message type NetBIOS has not) after a session message (at most 1). */
  errors = 0;
  /** The 4-byte header when it arrives in pieces. */
  private readonly head = new Uint8Array(4);
  private headHave = 0;
  /**
   * The message under way, when it is not wholly in one delivery: its first bytes (`smbPeekBytes`) until
   * `wanted` has seen them, then the part held; how much of it is in; its length and the part held.
   */
  private msg: Uint8Array | undefined;
  private have = 0;
  private len = 0;
  private hold = 0;
  /** Bytes to pass over (the rest of a message cut or not wanted, a session service packet). */
  private skip = 0;

  get heldBytes(): number {
    return this.msg ? this.msg.length : 0;
  }

  drop(): void {
    this.msg = undefined;
    this.stopped = true;
  }

  /**
   * Calls `on` for each message whose held part completes in `b`: the bytes, whether the rest was cut,
   * where in `b` the held part ends, and whether it lies wholly in `b`. A message that does not lie
   * wholly in `b` is first shown to `wanted` by its first bytes: one it does not want is passed over
   * without being held.
   */
  feed(
    b: Uint8Array,
    on: (m: Uint8Array, cut: boolean, at: number, inPlace: boolean) => void,
    wanted: (head: Uint8Array) => boolean,
  ): void {
    let i = 0;
    while (i < b.length && !this.stopped) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      if (this.msg) {
        const n = Math.min(this.msg.length - this.have, b.length - i);
        this.msg.set(b.subarray(i, i + n), this.have);
        this.have += n;
        i += n;
        if (this.have < this.msg.length) return;
        if (this.msg.length < this.hold) {
          // its first bytes are in: held whole, or passed over
          if (!wanted(this.msg)) {
            this.skip = this.len - this.have;
            this.msg = undefined;
            continue;
          }
          const m = new Uint8Array(this.hold);
          m.set(this.msg);
          this.msg = m;
          continue;
        }
        const m = this.msg;
        this.msg = undefined;
        this.skip = this.len - this.hold;
        on(m, this.len > this.hold, i, false);
        continue;
      }
      let type: number;
      let len: number;
      if (this.headHave === 0 && b.length - i >= 4) {
        type = b[i]!;
        len = (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!;
        i += 4;
      } else {
        const n = Math.min(4 - this.headHave, b.length - i);
        this.head.set(b.subarray(i, i + n), this.headHave);
        this.headHave += n;
        i += n;
        if (this.headHave < 4) return;
        this.headHave = 0;
        type = this.head[0]!;
        len = (this.head[1]! << 16) | (this.head[2]! << 8) | this.head[3]!;
      }
      if (type !== 0x00) {
        // session request, positive / negative / retarget response, keep-alive: no SMB in them
        if (type < 0x81 || type > 0x85) {
          if (this.read) this.errors++;
          this.stopped = true;
        }
        this.skip = len;
        continue;
      }
      this.read = true;
      const hold = Math.min(len, smbMessageHoldMax);
      if (b.length - i >= hold) {
        on(b.subarray(i, i + hold), len > hold, i + hold, true);
        i += hold;
        this.skip = len - hold;
        continue;
      }
      this.len = len;
      this.hold = hold;
      const peek = Math.min(hold, smbPeekBytes);
      if (b.length - i >= peek && peek < hold) {
        // its first bytes are here: held, or passed over
        if (!wanted(b.subarray(i, i + peek))) {
          this.skip = len;
          continue;
        }
        this.msg = new Uint8Array(hold);
      } else this.msg = new Uint8Array(peek);
      this.have = 0;
    }
  }
}
