import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DceRequest } from '../src/dcerpc.js';
import {
  commands,
  Engine,
  type EngineOptions,
  encodePcap,
  type Packet,
  Pipeline,
  readCapture,
  runCapture,
} from '../src/index.js';
import { loadRules } from '../src/run.js';
import { SmbSession, smbMessageHoldMax, smbPeekBytes, smbPipesMax } from '../src/smb.js';
import { damaged, mulberry32 } from './damage.js';
import { bind, bindAck, le16, le32, request } from './dce-wire.js';
import { ACK, conversationFrames, handshake, PSH, pkt, sharedIds } from './helpers.js';

// SMB as MS-CIFS (SMB1) and MS-SMB2 lay it out, in NetBIOS session messages (RFC 1002 4.3.1)

const svcctl = '367abb81-9844-35f1-ad32-98f038001003';
const atsvc = '1ff70682-0a51-30e8-076d-740be8cee98b';

const nbss = (m: number[]) => [0, (m.length >> 16) & 0xff, (m.length >> 8) & 0xff, m.length & 0xff, ...m];
const arr = (b: Uint8Array | number[]) => [...b];

/** An SMB1 header (32 bytes). */
function smb1Header(cmd: number, o: { reply?: boolean; tid?: number; mid?: number; status?: number }) {
  return [
    ...[0xff, 0x53, 0x4d, 0x42, cmd],
    ...le32(o.status ?? 0),
    o.reply ? 0x98 : 0x18,
    ...le16(0xc807),
    ...new Array(12).fill(0),
    ...le16(o.tid ?? 0),
    ...le16(1234),
    ...le16(2048),
    ...le16(o.mid ?? 1),
  ];
}

/** One SMB1 command block: word count, words, byte count, bytes. */
const block = (words: number[], bytes: number[]) => [
  words.length / 2,
  ...words,
  ...le16(bytes.length),
  ...bytes,
];

/** WRITE_ANDX request words (14) for `len` bytes at `dataOffset`. */
function writeAndXWords(fid: number, len: number, dataOffset: number, mode = 0, next = 0xff, nextOff = 0) {
  return [next, 0, ...le16(nextOff), ...le16(fid), ...le32(0), ...le32(0), ...le16(mode), ...le16(0)].concat([
    ...le16(0),
    ...le16(len),
    ...le16(dataOffset),
    ...le32(0),
  ]);
}
/** WRITE_ANDX request (one pad byte before the data, at offset 64). */
function writeAndX(fid: number, data: number[], o: { tid?: number; mid?: number; mode?: number } = {}) {
  return nbss([...smb1Header(0x2f, o), ...block(writeAndXWords(fid, data.length, 64, o.mode), [0, ...data])]);
}
/** READ_ANDX request words (12). */
const readAndXWords = (fid: number) =>
  [0xff, 0, 0, 0, ...le16(fid), ...le32(0), ...le16(1024), ...le16(1024)].concat([
    ...le32(0),
    ...le16(0),
    ...le32(0),
  ]);
/** READ_ANDX response words (12): the data at `dataOffset`. */
const readAndXReplyWords = (len: number, dataOffset: number) =>
  [0xff, 0, 0, 0, ...le16(0), ...le16(0), ...le16(0), ...le16(len), ...le16(dataOffset), ...le16(0)].concat(
    new Array(8).fill(0),
  );
/** WRITE_ANDX chained with READ_ANDX in one message (a client writing a PDU and reading the answer). */
function writeReadAndX(fid: number, data: number[], o: { tid?: number; mid?: number } = {}) {
  const readAt = 32 + 1 + 28 + 2 + 1 + data.length;
  return nbss([
    ...smb1Header(0x2f, o),
    ...block(writeAndXWords(fid, data.length, 64, 0, 0x2e, readAt), [0, ...data]),
    ...block(readAndXWords(fid), []),
  ]);
}
/** The answer to `writeReadAndX`: WRITE_ANDX's response, then READ_ANDX's with the data. */
function writeReadAndXReply(data: number[], o: { tid?: number; mid?: number; status?: number } = {}) {
  const readAt = 32 + 1 + 12 + 2;
  const dataAt = readAt + 1 + 24 + 2 + 1;
  return nbss([
    ...smb1Header(0x2f, { ...o, reply: true }),
    ...block([0x2e, 0, ...le16(readAt), ...le16(data.length), ...le16(0xffff), ...le32(0)], []),
    ...block(readAndXReplyWords(data.length, dataAt), [0, ...data]),
  ]);
}
/** TRANSACTION TransactNmPipe request: the first `count` of `total` bytes of data (at offset 76). */
function transactNmPipe(fid: number, data: number[], o: { tid?: number; mid?: number; total?: number } = {}) {
  const words = [...le16(0), ...le16(o.total ?? data.length), ...le16(0), ...le16(1024), 0, 0, ...le16(0)]
    .concat([...le32(0), ...le16(0), ...le16(0), ...le16(76), ...le16(data.length), ...le16(76), 2, 0])
    .concat([...le16(0x26), ...le16(fid)]);
  return nbss([...smb1Header(0x25, o), ...block(words, [...Buffer.from('\\PIPE\\\0'), 0, 0, ...data])]);
}
/** TRANSACTION_SECONDARY: `data` at displacement `disp` (at offset 52). */
function transactSecondary(
  data: number[],
  disp: number,
  total: number,
  o: { tid?: number; mid?: number } = {},
) {
  const words = [...le16(0), ...le16(total), ...le16(0), ...le16(0), ...le16(0), ...le16(data.length)].concat(
    [...le16(52), ...le16(disp)],
  );
  return nbss([...smb1Header(0x26, o), ...block(words, [0, ...data])]);
}
/** TRANSACTION response with the pipe's answer (at offset 56). */
function transactReply(data: number[], o: { tid?: number; mid?: number } = {}) {
  const words = [...le16(0), ...le16(data.length), ...le16(0), ...le16(0), ...le16(56), ...le16(0)].concat([
    ...le16(data.length),
    ...le16(56),
    ...le16(0),
    0,
    0,
  ]);
  return nbss([...smb1Header(0x25, { ...o, reply: true }), ...block(words, [0, ...data])]);
}
/** TREE_CONNECT_ANDX response naming the service ("IPC" a pipe tree, "A:" a disk). */
const treeConnectReply = (tid: number, service: string) =>
  nbss([
    ...smb1Header(0x75, { reply: true, tid }),
    ...block([0xff, 0, 0, 0, ...le16(1)], [...Buffer.from(`${service}\0\0`)]),
  ]);
const close1 = (fid: number, o: { tid?: number; mid?: number } = {}) =>
  nbss([...smb1Header(0x04, o), ...block([...le16(fid), ...le32(0)], [])]);
/** WRITE_RAW request (MS-CIFS 2.2.4.25.1, 12 words): `total` bytes, the first of them in it after a pad. */
const writeRaw = (fid: number, total: number, first: number[], o: { tid?: number; mid?: number } = {}) =>
  nbss([
    ...smb1Header(0x1d, o),
    ...block(
      [...le16(fid), ...le16(total), ...le16(0), ...le32(0), ...le32(0), ...le16(0), ...le32(0)].concat(
        le16(first.length),
        le16(60),
      ),
      [0, ...first],
    ),
  ]);
/** WRITE_RAW's interim answer (Available), or a refusal by its status. */
const writeRawInterim = (o: { tid?: number; mid?: number; status?: number } = {}) =>
  nbss([...smb1Header(0x1d, { ...o, reply: true }), ...block([...le16(0xffff)], [])]);
/** READ_RAW request (MS-CIFS 2.2.4.22.1, 8 words): the answer is the data, bare. */
const readRaw = (fid: number, o: { tid?: number; mid?: number } = {}) =>
  nbss([
    ...smb1Header(0x1a, o),
    ...block([...le16(fid), ...le32(0), ...le16(4096), ...le16(0), ...le32(0), ...le16(0)], []),
  ]);
/** WRITE_AND_CLOSE request (MS-CIFS 2.2.4.40.1): 6 words, or 12 with the reserved ones; a pad byte. */
const writeAndClose = (fid: number, data: number[], o: { tid?: number; mid?: number; long?: boolean } = {}) =>
  nbss([
    ...smb1Header(0x2c, o),
    ...block(
      [...le16(fid), ...le16(data.length), ...le32(0), ...le32(0), ...(o.long ? new Array(12).fill(0) : [])],
      [0, ...data],
    ),
  ]);

/** An SMB2 header (64 bytes); `next` chains a compound message. */
function smb2Header(
  cmd: number,
  o: {
    reply?: boolean;
    async?: boolean;
    related?: boolean;
    id?: number;
    tree?: number;
    status?: number;
    next?: number;
  },
) {
  return [
    ...[0xfe, 0x53, 0x4d, 0x42, ...le16(64), ...le16(1)],
    ...le32(o.status ?? 0),
    ...le16(cmd),
    ...le16(1),
    ...le32((o.reply ? 1 : 0) | (o.async ? 2 : 0) | (o.related ? 4 : 0)),
    ...le32(o.next ?? 0),
    ...le32(o.id ?? 0),
    ...le32(0),
    ...(o.async ? le32(7) : le32(0)),
    ...(o.async ? le32(0) : le32(o.tree ?? 1)),
    ...new Array(24).fill(0),
  ];
}
const fileId = (n: number) =>
  n === lastFile ? new Array(16).fill(0xff) : [...le32(n), ...le32(0), ...le32(n), ...le32(0)];
/** CREATE of a pipe by name (the body's fields up to the name; none of them read). */
const create2 = (name: string, o: H2 = {}) => {
  const utf16 = [...Buffer.from(name, 'utf16le')];
  return [
    ...smb2Header(5, o),
    ...le16(57),
    ...new Array(42).fill(0),
    ...le16(120),
    ...le16(utf16.length),
  ].concat(le32(0), le32(0), utf16);
};
/** CREATE's answer: FileId `f` after the times, sizes and attributes (89-byte body). */
const create2Reply = (f: number, o: H2 = {}) => [
  ...smb2Header(5, { ...o, reply: true }),
  ...le16(89),
  ...new Array(62).fill(0),
  ...fileId(f),
  ...le32(0),
  ...le32(0),
  0,
];
type H2 = { id?: number; tree?: number; status?: number; next?: number; async?: boolean; related?: boolean };
/** A related command's FileId (MS-SMB2 3.2.4.1.4): all ones, the file of the command before it. */
const lastFile = -1;
const write2 = (f: number, data: number[], o: H2 = {}) => [
  ...smb2Header(9, o),
  ...[...le16(49), ...le16(112), ...le32(data.length), ...le32(0), ...le32(0), ...fileId(f)],
  ...[...le32(0), ...le32(0), ...le16(0), ...le16(0), ...le32(0), ...data],
];
const read2 = (f: number, o: H2 = {}) => [
  ...smb2Header(8, o),
  ...[...le16(49), 0x50, 0, ...le32(1024), ...le32(0), ...le32(0), ...fileId(f), ...le32(0), ...le32(0)],
  ...[...le32(0), ...le16(0), ...le16(0), 0],
];
const read2Reply = (data: number[], o: H2 = {}) => [
  ...smb2Header(8, { ...o, reply: true }),
  ...[...le16(17), 80, 0, ...le32(data.length), ...le32(0), ...le32(0), ...data],
];
const ioctl2 = (f: number, data: number[], o: H2 = {}) => [
  ...smb2Header(11, o),
  ...[...le16(57), ...le16(0), ...le32(0x0011c017), ...fileId(f), ...le32(120), ...le32(data.length)],
  ...[...le32(0), ...le32(0), ...le32(0), ...le32(1024), ...le32(1), ...le32(0), ...data],
];
const ioctl2Reply = (f: number, data: number[], o: H2 = {}) => [
  ...smb2Header(11, { ...o, reply: true }),
  ...[...le16(49), ...le16(0), ...le32(0x0011c017), ...fileId(f), ...le32(112), ...le32(0)],
  ...[...le32(112), ...le32(data.length), ...le32(0), ...le32(0), ...data],
];
const treeConnect2Reply = (tree: number, shareType: number) => [
  ...smb2Header(3, { reply: true, tree }),
  ...[...le16(16), shareType, 0, ...le32(0), ...le32(0), ...le32(0x1f01ff)],
];
const close2 = (f: number, o: H2 = {}) => [
  ...smb2Header(6, o),
  ...le16(24),
  ...le16(0),
  ...le32(0),
  ...fileId(f),
];
/** Commands chained in one compound message: each but the last padded to 8 bytes and pointing at the next. */
function compound(...cmds: ((next: number) => number[])[]): number[] {
  const out: number[] = [];
  cmds.forEach((make, k) => {
    let c = make(0);
    if (k < cmds.length - 1) {
      const len = Math.ceil(c.length / 8) * 8;
      c = [...make(len), ...new Array(len - c.length).fill(0)];
    }
    out.push(...c);
  });
  return out;
}

type Wire = [0 | 1, number[]][];
/** What a session finds in messages fed whole, one delivery each. */
function requestsOf(wire: Wire, s = new SmbSession()): DceRequest[] {
  const out: DceRequest[] = [];
  for (const [dir, m] of wire) out.push(...s.feed(dir, Uint8Array.from(m), false));
  return out;
}
const seen = (rs: DceRequest[]) =>
  rs.map((r) => `${r.uuid ?? '-'} ${r.opnum} ${Buffer.from(r.stub!).toString('hex')}`);
const hexOf = (b: number[]) => Buffer.from(b).toString('hex');

/** An SMB1 session on an IPC$ tree: bind and bind_ack, then requests in the ways SMB1 carries them. */
function smb1Session(): { wire: Wire; want: string[] } {
  const stubA = [1, 2, 3, 4];
  const stubB = [...Buffer.from('OpenSCManagerW, raw mode')];
  const stubC = [...Buffer.from('a transaction in three parts')];
  const reqC = arr(request(0, 12, stubC));
  const stubD = [5, 6, 7];
  const wire: Wire = [
    // NetBIOS session request and positive response (port 139), then a keep-alive: no SMB in them
    [0, [0x81, 0, 0, 4, 0x20, 0x45, 0x45, 0]],
    [1, [0x82, 0, 0, 0]],
    [1, treeConnectReply(7, 'IPC')],
    [0, [0x85, 0, 0, 0]],
    [0, writeReadAndX(0x4001, arr(bind([[0, svcctl, 2]])), { tid: 7, mid: 10 })],
    [1, writeReadAndXReply(arr(bindAck([0])), { tid: 7, mid: 10 })],
    [0, transactNmPipe(0x4001, arr(request(0, 15, stubA)), { tid: 7, mid: 11 })],
    [
      1,
      transactReply(
        arr(request(0, 0, [9, 9])).map((b, k) => (k === 2 ? 2 : b)),
        { tid: 7, mid: 11 },
      ),
    ],
    // a raw-mode message write: the data starts with its 2-byte length
    [0, writeAndX(0x4001, [...le16(40), ...arr(request(0, 16, stubB))], { tid: 7, mid: 12, mode: 0x000c })],
    [0, transactNmPipe(0x4001, reqC.slice(0, 20), { tid: 7, mid: 13, total: reqC.length })],
    [0, transactSecondary(reqC.slice(20, 30), 20, reqC.length, { tid: 7, mid: 13 })],
    [0, transactSecondary(reqC.slice(30), 30, reqC.length, { tid: 7, mid: 13 })],
    // a second pipe bound by a transaction (the bind_ack in its response)
    [0, transactNmPipe(0x4002, arr(bind([[3, atsvc, 1]])), { tid: 7, mid: 14 })],
    [1, transactReply(arr(bindAck([0])), { tid: 7, mid: 14 })],
    [0, writeAndX(0x4002, arr(request(3, 1, stubD)), { tid: 7, mid: 15 })],
  ];
  return {
    wire,
    want: [
      `${svcctl} 15 ${hexOf(stubA)}`,
      `${svcctl} 16 ${hexOf(stubB)}`,
      `${svcctl} 12 ${hexOf(stubC)}`,
      `${atsvc} 1 ${hexOf(stubD)}`,
    ],
  };
}

/** An SMB2 session on a pipe share: bind by WRITE, bind_ack by READ (after STATUS_PENDING), IOCTL calls. */
function smb2Session(): { wire: Wire; want: string[] } {
  const stub = [...Buffer.from('NetrJobAdd')];
  const wire: Wire = [
    [1, nbss(treeConnect2Reply(5, 2))],
    [0, nbss(write2(9, arr(bind([[1, atsvc, 1]])), { id: 20, tree: 5 }))],
    [0, nbss(read2(9, { id: 21, tree: 5 }))],
    [1, nbss(smb2Header(8, { reply: true, async: true, id: 21, status: 0x103 }).concat(le32(0), le32(0)))],
    [1, nbss(read2Reply(arr(bindAck([0])), { id: 21, async: true }))],
    [0, nbss(ioctl2(9, arr(request(1, 0, stub)), { id: 22, tree: 5 }))],
    [
      1,
      nbss(
        ioctl2Reply(
          9,
          arr(request(1, 0, [0, 0, 0, 0])).map((b, k) => (k === 2 ? 2 : b)),
          { id: 22 },
        ),
      ),
    ],
    // a compound message: two IOCTL calls
    [
      0,
      nbss(
        compound(
          (next) => ioctl2(9, arr(request(1, 1, [1])), { id: 23, tree: 5, next }),
          (next) => ioctl2(9, arr(request(1, 2, [2, 2])), { id: 24, tree: 5, next }),
        ),
      ),
    ],
  ];
  return { wire, want: [`${atsvc} 0 ${hexOf(stub)}`, `${atsvc} 1 01`, `${atsvc} 2 0202`] };
}

describe('SMB named pipes (DCE/RPC over SMB1 and SMB2)', () => {
  it('SMB1: a pipe bound by WRITE_ANDX / READ_ANDX, called by TransactNmPipe, raw-mode writes and secondaries', () => {
    const { wire, want } = smb1Session();
    expect(seen(requestsOf(wire))).toEqual(want);
  });

  it('a call written to a pipe in two fragments comes out whole too, marked reassembled', () => {
    const wire: Wire = [
      [1, treeConnectReply(7, 'IPC')],
      [0, writeReadAndX(0x4001, arr(bind([[0, svcctl, 2]])), { tid: 7, mid: 10 })],
      [1, writeReadAndXReply(arr(bindAck([0])), { tid: 7, mid: 10 })],
      [0, writeAndX(0x4001, arr(request(0, 15, [1, 2, 3], 0x01)), { tid: 7, mid: 11 })],
      [0, writeAndX(0x4001, arr(request(0, 15, [4, 5], 0x02)), { tid: 7, mid: 12 })],
    ];
    const rs = requestsOf(wire);
    expect(seen(rs)).toEqual([`${svcctl} 15 010203`, `${svcctl} 15 0405`, `${svcctl} 15 0102030405`]);
    expect(rs.map((r) => [r.first, r.reassembled, r.versionMajor])).toEqual([
      [true, undefined, 2],
      [false, undefined, 2],
      [true, true, 2],
    ]);
  });

  it('SMB2: WRITE, READ answered after STATUS_PENDING, IOCTL FSCTL_PIPE_TRANSCEIVE, compound messages', () => {
    const { wire, want } = smb2Session();
    expect(seen(requestsOf(wire))).toEqual(want);
  });

  it('SMB2 related compounds: a pipe opened, bound and read in one message, known by its FileId after', () => {
    const write2Reply = (o: H2) => [
      ...smb2Header(9, { ...o, reply: true }),
      ...le16(17),
      ...new Array(15).fill(0),
    ];
    const stub = [...Buffer.from('NetrJobAdd')];
    const wire: Wire = [
      [1, nbss(treeConnect2Reply(5, 2))],
      // CREATE, then WRITE (the bind) and READ on its file: FileId all ones, the related flag
      [
        0,
        nbss(
          compound(
            (next) => create2('atsvc', { id: 30, tree: 5, next }),
            (next) => write2(lastFile, arr(bind([[1, atsvc, 1]])), { id: 31, tree: 5, next, related: true }),
            (next) => read2(lastFile, { id: 32, tree: 5, next, related: true }),
          ),
        ),
      ],
      [
        1,
        nbss(
          compound(
            (next) => create2Reply(9, { id: 30, next }),
            (next) => write2Reply({ id: 31, next }),
            (next) => read2Reply(arr(bindAck([0])), { id: 32, next }),
          ),
        ),
      ],
      // the call on the FileId the CREATE's answer gave
      [0, nbss(ioctl2(9, arr(request(1, 0, stub)), { id: 33, tree: 5 }))],
      // a second pipe: CREATE and a related IOCTL (the bind), answered with the IOCTL's FileId all ones
      [
        0,
        nbss(
          compound(
            (next) => create2('svcctl', { id: 40, tree: 5, next }),
            (next) => ioctl2(lastFile, arr(bind([[0, svcctl, 2]])), { id: 41, tree: 5, next, related: true }),
          ),
        ),
      ],
      [
        1,
        nbss(
          compound(
            (next) => create2Reply(12, { id: 40, next }),
            (next) => ioctl2Reply(lastFile, arr(bindAck([0])), { id: 41, next }),
          ),
        ),
      ],
      // all-ones FileIds that are not related ones: a command without the flag, and one first in its message
      [
        0,
        nbss(
          compound(
            (next) => ioctl2(12, arr(request(0, 15, [7])), { id: 42, tree: 5, next }),
            (next) => write2(lastFile, arr(request(0, 15, [8])), { id: 43, tree: 5, next }),
            (next) => ioctl2(12, arr(request(0, 15, [6])), { id: 44, tree: 5, next }),
          ),
        ),
      ],
      [0, nbss(write2(lastFile, arr(request(0, 15, [9])), { id: 45, tree: 5, related: true }))],
    ];
    const session = new SmbSession();
    expect(seen(requestsOf(wire, session))).toEqual([
      `${atsvc} 0 ${hexOf(stub)}`,
      `${svcctl} 15 07`,
      '- 15 08',
      `${svcctl} 15 06`,
      '- 15 09',
    ]);
    // each pipe under its FileId only: none left under the name its CREATE gave it before the answer
    const pipes = (session as unknown as { pipes: Map<string, unknown> }).pipes;
    expect([...pipes.keys()].filter((k) => !/^[0-9a-f]{32}$/.test(k))).toEqual([]);
    expect(pipes.size).toBe(3);
  });

  it('offsets: where the stub lies in the delivery when the message is wholly in it, else where it ends', () => {
    const { wire } = smb2Session();
    const s = new SmbSession();
    const deliveries = wire.map(([dir, m]) => [dir, Uint8Array.from(m)] as const);
    let got: DceRequest[] = [];
    for (const [dir, m] of deliveries.slice(0, 5)) s.feed(dir, m, false);
    const ioctl = deliveries[5]![1];
    // the IOCTL message in one delivery: the stub's offsets are in it
    got = s.feed(0, ioctl, false);
    expect(got).toHaveLength(1);
    const r = got[0]!;
    expect(Buffer.from(ioctl.subarray(r.stubStart, r.stubEnd)).toString()).toBe('NetrJobAdd');
    // the same message in two deliveries, the second with 5 more bytes: held, the stub still whole, its
    // offsets where the message ends in the second delivery
    const t = new SmbSession();
    for (const [dir, m] of deliveries.slice(0, 5)) t.feed(dir, m, false);
    expect(t.feed(0, ioctl.subarray(0, 30), false)).toEqual([]);
    expect(t.heldBytes).toBeGreaterThan(0);
    const next = Uint8Array.from([...ioctl.subarray(30), 0, 0, 0, 0, 0]);
    const [q] = t.feed(0, next, false);
    const end = ioctl.length - 30;
    expect([q!.stubStart, q!.stubEnd, Buffer.from(q!.stub!).toString()]).toEqual([end, end, 'NetrJobAdd']);
    expect(t.heldBytes).toBe(0);
  });

  it('a disk share is not followed; a tree whose connection was not seen is, while its bytes are DCE/RPC', () => {
    const pdu = arr(request(0, 15, [1, 2]));
    const wire = (tree: number[]): Wire => [
      [1, tree],
      [0, writeReadAndX(1, arr(bind([[0, svcctl, 2]])), { tid: 3, mid: 1 })],
      [1, writeReadAndXReply(arr(bindAck([0])), { tid: 3, mid: 1 })],
      [0, writeAndX(1, pdu, { tid: 3, mid: 2 })],
    ];
    expect(seen(requestsOf(wire(treeConnectReply(3, 'IPC'))))).toEqual([`${svcctl} 15 0102`]);
    expect(requestsOf(wire(treeConnectReply(3, 'A:')))).toEqual([]);
    expect(seen(requestsOf(wire(treeConnectReply(4, 'A:'))))).toEqual([`${svcctl} 15 0102`]);
    // SMB2: share type 1 (disk)
    expect(
      requestsOf([
        [1, nbss(treeConnect2Reply(5, 1))],
        [0, nbss(write2(9, pdu, { tree: 5 }))],
      ]),
    ).toEqual([]);
    // a file that is not DCE/RPC on an unknown tree: its pipe stops at the first bytes
    const s = new SmbSession();
    expect(requestsOf([[0, writeAndX(2, [...Buffer.from('MZ, a program')], { tid: 9 })]], s)).toEqual([]);
    expect(requestsOf([[0, writeAndX(2, pdu, { tid: 9 })]], s)).toEqual([]);
  });

  it("app-layer errors (the exception policy's): a pipe that stops on bytes not DCE/RPC after its PDUs, and NetBIOS framing broken after session messages", () => {
    const notDce = [...Buffer.from('junk! not a DCE/RPC PDU header')];
    const s = new SmbSession();
    requestsOf([[0, nbss(write2(9, arr(bind([[1, atsvc, 1]])), { id: 2 }))]], s);
    expect(s.errors).toBe(0);
    requestsOf([[0, nbss(write2(9, notDce, { id: 3 }))]], s);
    expect(s.errors).toBe(1);
    // a file whose first bytes are not DCE/RPC stops its pipe: no error
    const t = new SmbSession();
    requestsOf([[0, nbss(write2(9, notDce))]], t);
    expect(t.errors).toBe(0);
    // a message type NetBIOS has not, after a session message in that direction, and before any
    const u = new SmbSession();
    requestsOf([[0, nbss(write2(9, notDce))]], u);
    requestsOf([[0, [7, 0, 0, 1, 0]]], u);
    expect(u.errors).toBe(1);
    const v = new SmbSession();
    requestsOf([[0, [7, 0, 0, 1, 0]]], v);
    expect(v.errors).toBe(0);
  });

  it('a closed file id is forgotten: the next file given that id starts afresh', () => {
    const s = new SmbSession();
    requestsOf([[0, writeAndX(2, [...Buffer.from('MZ, a program')], { tid: 9 })]], s);
    const again: Wire = [
      [0, close1(2, { tid: 9 })],
      [0, writeReadAndX(2, arr(bind([[0, svcctl, 2]])), { tid: 9, mid: 4 })],
      [1, writeReadAndXReply(arr(bindAck([0])), { tid: 9, mid: 4 })],
      [0, writeAndX(2, arr(request(0, 19, [7])), { tid: 9, mid: 5 })],
    ];
    expect(seen(requestsOf(again, s))).toEqual([`${svcctl} 19 07`]);
    // SMB2 CLOSE the same way
    const t = new SmbSession();
    requestsOf([[0, nbss(write2(9, [...Buffer.from('not DCE/RPC')]))]], t);
    const bound: Wire = [
      [0, nbss(close2(9))],
      [0, nbss(write2(9, arr(bind([[1, atsvc, 1]])), { id: 2 }))],
      [0, nbss(read2(9, { id: 3 }))],
      [1, nbss(read2Reply(arr(bindAck([0])), { id: 3 }))],
      [0, nbss(write2(9, arr(request(1, 0, [5])), { id: 4 }))],
    ];
    expect(seen(requestsOf(bound, t))).toEqual([`${atsvc} 0 05`]);
  });

  it("SMB1 WRITE_RAW and READ_RAW: the bare message after them is the pipe's data, held when in pieces", () => {
    const stub = new Array(200).fill(0x41);
    const req = arr(request(0, 12, stub));
    const bare = nbss(req.slice(10));
    const wire: Wire = [
      [0, writeAndX(5, arr(bind([[0, svcctl, 2]])), { tid: 9, mid: 4 })],
      // the bind_ack read raw: the answer is the data alone
      [0, readRaw(5, { tid: 9, mid: 5 })],
      [1, nbss(arr(bindAck([0])))],
      // a call written raw: its first 10 bytes in the request, the rest bare after the interim answer, in
      // two pieces (past the bytes a message's first piece is judged by)
      [0, writeRaw(5, req.length, req.slice(0, 10), { tid: 9, mid: 6 })],
      [1, writeRawInterim({ tid: 9, mid: 6 })],
      [0, bare.slice(0, 120)],
      [0, bare.slice(120)],
      // refused: the client's next message is SMB again
      [0, writeRaw(5, 100, [], { tid: 9, mid: 7 })],
      [1, writeRawInterim({ tid: 9, mid: 7, status: 0xc0000022 })],
      [0, writeAndX(5, arr(request(0, 13, [3])), { tid: 9, mid: 8 })],
    ];
    expect(seen(requestsOf(wire))).toEqual([`${svcctl} 12 ${hexOf(stub)}`, `${svcctl} 13 03`]);
    // a raw read of a file no pipe was written to: its data passed over unheld, the next message SMB
    const t = new SmbSession();
    const file = nbss(new Array(300).fill(0x42));
    const other: Wire = [
      [0, readRaw(6, { tid: 9, mid: 20 })],
      [1, file.slice(0, 120)],
      [1, file.slice(120)],
      [0, transactNmPipe(7, arr(bind([[0, svcctl, 2]])), { tid: 9, mid: 21 })],
      [1, transactReply(arr(bindAck([0])), { tid: 9, mid: 21 })],
      [0, writeAndX(7, arr(request(0, 14, [4])), { tid: 9, mid: 22 })],
    ];
    expect(seen(requestsOf(other, t))).toEqual([`${svcctl} 14 04`]);
    expect(t.heldBytes).toBe(0);
  });

  it('SMB1 WRITE_AND_CLOSE: its data goes through the pipe, then the FID is closed', () => {
    const s = new SmbSession();
    const wire: Wire = [
      [0, writeReadAndX(3, arr(bind([[0, svcctl, 2]])), { tid: 9, mid: 4 })],
      [1, writeReadAndXReply(arr(bindAck([0])), { tid: 9, mid: 4 })],
      [0, writeAndClose(3, arr(request(0, 12, [...Buffer.from('EVIL')])), { tid: 9, mid: 5 })],
      // closed: the same FID's next call belongs to a pipe never bound
      [0, writeAndX(3, arr(request(0, 12, [1])), { tid: 9, mid: 6 })],
      // the 12-word form on a second pipe
      [0, writeReadAndX(4, arr(bind([[1, atsvc, 1]])), { tid: 9, mid: 7 })],
      [1, writeReadAndXReply(arr(bindAck([0])), { tid: 9, mid: 7 })],
      [0, writeAndClose(4, arr(request(1, 0, [2])), { tid: 9, mid: 8, long: true })],
    ];
    expect(seen(requestsOf(wire, s))).toEqual([
      `${svcctl} 12 ${hexOf([...Buffer.from('EVIL')])}`,
      '- 12 01',
      `${atsvc} 0 02`,
    ]);
  });

  it(`at most ${smbPipesMax} pipes: the least recently used is let go`, () => {
    const s = new SmbSession();
    const open = (fid: number): Wire => [
      [0, writeReadAndX(fid, arr(bind([[0, svcctl, 2]])), { mid: fid })],
      [1, writeReadAndXReply(arr(bindAck([0])), { mid: fid })],
    ];
    const call = (fid: number) => seen(requestsOf([[0, writeAndX(fid, arr(request(0, 1, [fid])))]], s));
    for (let fid = 1; fid <= smbPipesMax; fid++) requestsOf(open(fid), s);
    // answers to reads of files never written (a pipe opened before the capture) take no place
    for (let fid = 200; fid < 200 + smbPipesMax; fid++)
      requestsOf(
        [
          [0, nbss([...smb1Header(0x2e, { mid: fid }), ...block(readAndXWords(fid), [])])],
          [
            1,
            nbss([
              ...smb1Header(0x2e, { reply: true, mid: fid }),
              ...block(readAndXReplyWords(4, 60), [0, 5, 0, 2, 3]),
            ]),
          ],
        ],
        s,
      );
    expect(call(1)).toEqual([`${svcctl} 1 01`]); // pipe 1 used last: pipe 2 is the least recent now
    requestsOf(open(100), s);
    expect(call(1)).toEqual([`${svcctl} 1 01`]);
    expect(call(3)).toEqual([`${svcctl} 1 03`]);
    // let go: a new pipe, its bind forgotten (the request has no interface)
    expect(call(2)).toEqual(['- 1 02']);
  });

  it(`a message over ${smbMessageHoldMax} bytes: its first bytes are read, the pipe it writes sees a gap`, () => {
    const s = new SmbSession();
    requestsOf(
      [
        [0, writeReadAndX(1, arr(bind([[0, svcctl, 2]])), { mid: 1 })],
        [1, writeReadAndXReply(arr(bindAck([0])), { mid: 1 })],
      ],
      s,
    );
    const pdu = arr(request(0, 5, [1]));
    // a write of 11 requests of 6,560 bytes: the part held (data at 64) ends after the 10th, the 11th is
    // skipped whole, so only the gap tells the pipe that its stream lost bytes
    const call = arr(request(0, 6, new Array(6_536).fill(0x41)));
    const big = new Array<number[]>(11).fill(call).flat();
    expect(64 + 10 * call.length).toBe(smbMessageHoldMax);
    const m = writeAndX(1, big);
    m.splice(4 + 32 + 1 + 18, 4, ...le16(big.length >> 16), ...le16(big.length & 0xffff));
    let got: DceRequest[] = [];
    for (let at = 0; at < m.length; at += 1460)
      got.push(...s.feed(0, Uint8Array.from(m.slice(at, at + 1460)), false));
    expect(got.map((r) => r.opnum)).toEqual(new Array(10).fill(6));
    expect(s.heldBytes).toBe(0);
    // the bytes past the held part were skipped: the pipe stops at the gap
    got = requestsOf([[0, writeAndX(1, pdu)]], s);
    expect(got).toEqual([]);
    // the framing goes on: another pipe is still read
    requestsOf(
      [
        [0, writeReadAndX(2, arr(bind([[0, svcctl, 2]])), { mid: 2 })],
        [1, writeReadAndXReply(arr(bindAck([0])), { mid: 2 })],
      ],
      s,
    );
    expect(seen(requestsOf([[0, writeAndX(2, pdu)]], s))).toEqual([`${svcctl} 5 01`]);
  });

  it('a message in pieces is held only where a pipe may need it: file transfers are passed over', () => {
    /** Bytes held after the first 1,000 bytes of `m` (the message then goes on), after `before`. */
    const heldAfter = (before: Wire, dir: 0 | 1, m: number[]) => {
      const s = new SmbSession();
      requestsOf(before, s);
      expect(m.length).toBeGreaterThan(2000);
      s.feed(dir, Uint8Array.from(m.slice(0, 1000)), false);
      return s.heldBytes;
    };
    const file = new Array(3000).fill(0x4d);
    const pipe = [...arr(request(0, 1, new Array(3000).fill(1)))];
    // SMB1: writes on a disk share, on a pipe share, on an unknown tree to a file that is not DCE/RPC
    const ipc7: Wire = [[1, treeConnectReply(7, 'IPC')]];
    expect(heldAfter([[1, treeConnectReply(7, 'A:')]], 0, writeAndX(1, file, { tid: 7 }))).toBe(0);
    expect(heldAfter(ipc7, 0, writeAndX(1, pipe, { tid: 7 }))).toBe(pipe.length + 64);
    const notDce: Wire = [[0, writeAndX(1, new Array(20).fill(0x4d), { tid: 8 })]];
    expect(heldAfter(notDce, 0, writeAndX(1, file, { tid: 8 }))).toBe(0);
    expect(heldAfter([], 0, writeAndX(1, file, { tid: 8 }))).toBe(file.length + 64);
    // a write chained to another command is held: the other may matter
    expect(heldAfter([[1, treeConnectReply(7, 'A:')]], 0, writeReadAndX(1, file, { tid: 7 }))).toBe(
      file.length + 64 + 27,
    );
    // SMB1 READ_ANDX answers: to a followed pipe's read, or to a read nobody follows
    const reply = nbss([
      ...smb1Header(0x2e, { reply: true, mid: 3 }),
      ...block(readAndXReplyWords(3000, 60), [0, ...file]),
    ]);
    const readOf = (fid: number): Wire => [
      [0, nbss([...smb1Header(0x2e, { mid: 3 }), ...block(readAndXWords(fid), [])])],
    ];
    const bound: Wire = [[0, writeAndX(5, arr(bind([[0, svcctl, 2]])))]];
    expect(heldAfter([...bound, ...readOf(5)], 1, reply)).toBe(reply.length - 4);
    expect(heldAfter([...bound, ...readOf(6)], 1, reply)).toBe(0);
    // SMB2: a write on a disk share or a pipe share, a READ answer nobody follows, an encrypted message
    expect(heldAfter([[1, nbss(treeConnect2Reply(5, 1))]], 0, nbss(write2(9, file, { tree: 5 })))).toBe(0);
    const w2 = nbss(write2(9, pipe, { tree: 5 }));
    expect(heldAfter([[1, nbss(treeConnect2Reply(5, 2))]], 0, w2)).toBe(w2.length - 4);
    expect(heldAfter([[0, nbss(read2(9, { id: 4 }))]], 1, nbss(read2Reply(file, { id: 4 })))).toBe(0);
    const r2 = nbss(read2Reply(file, { id: 4 }));
    const w2b: Wire = [
      [0, nbss(write2(9, arr(bind([[1, atsvc, 1]]))))],
      [0, nbss(read2(9, { id: 4 }))],
    ];
    expect(heldAfter(w2b, 1, r2)).toBe(r2.length - 4);
    // a compound message is held whatever its first command: a later one may matter
    const both = nbss(
      compound(
        (next) => write2(9, file, { tree: 5, next }),
        (next) => ioctl2(3, arr(request(1, 1, [1])), { tree: 6, next }),
      ),
    );
    expect(heldAfter([[1, nbss(treeConnect2Reply(5, 1))]], 0, both)).toBe(both.length - 4);
    const transform = nbss([0xfd, 0x53, 0x4d, 0x42, ...file]);
    expect(heldAfter([], 0, transform)).toBe(0);
  });

  it('segmentation: any cut of the messages gives the same requests; mutated bytes never throw', () => {
    const sessions = [smb1Session(), smb2Session()];
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1),
        fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (which, sizes, flips) => {
          const { wire, want } = sessions[which]!;
          // each direction's bytes cut at the sizes (cycled), fed in the order the messages go
          const s = new SmbSession();
          const got: DceRequest[] = [];
          let k = 0;
          for (const [dir, m] of wire)
            for (let at = 0; at < m.length; k++) {
              const n = sizes[k % sizes.length]!;
              const part = Uint8Array.from(m.slice(at, at + n));
              for (const r of s.feed(dir, part, false)) {
                got.push(r);
                expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= part.length).toBe(true);
              }
              at += n;
            }
          expect(seen(got)).toEqual(want);
          expect(s.heldBytes).toBe(0);
          // the same bytes with some flipped: whatever is found lies within what was fed
          const t = new SmbSession();
          const all = wire.map(([dir, m]) => [dir, Uint8Array.from(m)] as const);
          const total = all.reduce((n, [, m]) => n + m.length, 0);
          let pos = 0;
          for (const [dir, m] of all) {
            for (const [x, v] of flips) {
              const at = x % total;
              if (at >= pos && at < pos + m.length) m[at - pos] = v;
            }
            pos += m.length;
            for (const r of t.feed(dir, m, false))
              expect(0 <= r.stubStart && r.stubStart <= r.stubEnd && r.stubEnd <= m.length).toBe(true);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('bytes that are not NetBIOS framing, and a stream gap, end the direction', () => {
    // SMB1 messages go one way: a client's without the reply flag, a server's with it
    const u = new SmbSession();
    const pdu = arr(request(0, 15, [1, 2]));
    expect(requestsOf([[1, writeAndX(1, pdu)]], u)).toEqual([]);
    const asReply = writeAndX(1, pdu);
    asReply[4 + 9] = 0x98;
    expect(requestsOf([[0, asReply]], u)).toEqual([]);
    expect(requestsOf([[0, writeAndX(1, pdu)]], u)).toHaveLength(1);
    const s = new SmbSession();
    expect(s.feed(0, Uint8Array.from([0x47, 0x45, 0x54, 0x20, 0x2f]), false)).toEqual([]);
    expect(requestsOf(smb2Session().wire, s).filter((r) => r.opnum === 0)).toEqual([]);
    const { wire, want } = smb1Session();
    const t = new SmbSession();
    expect(seen(requestsOf(wire.slice(0, 7), t))).toEqual(want.slice(0, 1));
    // a gap on the client's side: nothing more from it
    expect(t.feed(0, Uint8Array.from(wire[8]![1]), true)).toEqual([]);
    expect(requestsOf(wire.slice(9), t)).toEqual([]);
  });
});

describe('SMB named pipes in the engine', () => {
  const rules = [
    `alert tcp any any -> any [139,445] (msg:"svcctl CreateServiceW"; flow:to_server,established; dce_iface:uuid ${svcctl}; dce_opnum:"12"; dce_stub_data; content:"EVIL"; sid:1;)`,
    `alert tcp any any -> any any (msg:"svcctl"; flow:to_server,established; dce_iface:uuid ${svcctl}; sid:2;)`,
  ];

  /** A TCP connection from port 40000 to `dp` carrying the messages; the sids alerted. */
  function run(dp: number, wire: Wire, opts: EngineOptions = {}): { sids: number[]; e: Engine } {
    const e = new Engine(loadRules(rules.join('\n'), 'r').rules, { streamRelease: 'immediate', ...opts });
    let ts = 0;
    const sids: number[] = [];
    for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, dp)) e.inspect(p, ts++);
    const seq = [1001, 5001];
    for (const [dir, m] of wire) {
      const [src, dst, sp, dport] =
        dir === 0 ? ['10.0.0.1', '10.0.0.2', 40000, dp] : ['10.0.0.2', '10.0.0.1', dp, 40000];
      const p = pkt({
        src,
        dst,
        sp,
        dp: dport,
        flags: ACK | PSH,
        seq: seq[dir]!,
        ack: seq[1 - dir]!,
        payload: Uint8Array.from(m),
      });
      seq[dir]! += m.length;
      for (const a of e.inspect(p, ts++)) sids.push(a.sid);
    }
    return { sids, e };
  }
  const wire: Wire = [
    [1, treeConnectReply(7, 'IPC')],
    [0, writeReadAndX(1, arr(bind([[0, svcctl, 2]])), { tid: 7, mid: 1 })],
    [1, writeReadAndXReply(arr(bindAck([0])), { tid: 7, mid: 1 })],
    [0, transactNmPipe(1, arr(request(0, 12, [...Buffer.from('..EVIL..')])), { tid: 7, mid: 2 })],
    [0, transactNmPipe(1, arr(request(0, 12, [...Buffer.from('..good..')])), { tid: 7, mid: 3 })],
  ];

  it('rules on 139 and 445 see the requests in the pipes; on another port SMB is known by its first bytes', () => {
    const on445 = run(445, wire);
    expect(on445.sids.sort()).toEqual([1, 2, 2]);
    expect(on445.e.stats.dceSmbRequests).toBe(2);
    expect(run(139, wire).sids.sort()).toEqual([1, 2, 2]);
    // each message in two segments: held until whole, the same alerts
    const split: Wire = wire.flatMap(([dir, m]) => [
      [dir, m.slice(0, 50)],
      [dir, m.slice(50)],
    ]);
    expect(run(445, split).sids.sort()).toEqual([1, 2, 2]);
    // on 4445 the rule for any port sees them (the one for 139 and 445 does not): the first message is
    // a NetBIOS session message holding an SMB header, as Snort 3's wizard takes dce_smb anywhere
    const elsewhere = run(4445, wire);
    expect(elsewhere.sids).toEqual([2, 2]);
    expect(elsewhere.e.stats.dceSmbRequests).toBe(2);
    // those first bytes cut one a segment, in both directions, before either has shown 8
    const [first, ...rest] = wire;
    const second = rest[0]!;
    const trickle: Wire = [
      [first![0], first![1].slice(0, 1)],
      [second[0], second[1].slice(0, 3)],
      ...first![1].slice(1, 8).map((b): [0 | 1, number[]] => [first![0], [b]]),
      [first![0], first![1].slice(8)],
      [second[0], second[1].slice(3)],
      ...rest.slice(1),
    ];
    expect(run(4445, trickle).sids).toEqual([2, 2]);
    // an SMB2 session (0xfe "SMB") likewise: its three calls read from the pipe
    const { wire: wire2, want: want2 } = smb2Session();
    expect(run(4445, wire2).e.stats.dceSmbRequests).toBe(want2.length);
    // NetBIOS framing around something else: not SMB, and nothing is read as DCE/RPC
    const notSmb: Wire = wire.map(([dir, m]) => [dir, [...m.slice(0, 4), 0xfd, ...m.slice(5)]]);
    const other = run(4445, notSmb);
    expect(other.sids).toEqual([]);
    expect(other.e.stats.dceSmbRequests).toBe(0);
    // and on 445 the same bytes are not SMB either: the port decides there
    expect(run(445, notSmb).sids).toEqual([]);
  });

  it('an SMB connection is reassembled past the reassembly depth: calls after a file copy are seen', () => {
    // a file copied to a disk share (PsExec's first step), then the service created over svcctl
    const copy: Wire = [[1, treeConnectReply(8, 'A:')]];
    for (let k = 0; k < 8; k++)
      copy.push([0, writeAndX(9, new Array(1000).fill(0x4d), { tid: 8, mid: 50 + k })]);
    const opts = { reassemblyDepthBytes: 4096 };
    expect(run(445, [...copy, ...wire], opts).sids.sort()).toEqual([1, 2, 2]);
    // an SMB connection known by its first bytes too: by the server's (its stream then made without a
    // depth), and by the client's, whose stream had one until they showed SMB
    expect(run(4445, [...copy, ...wire], opts).sids).toEqual([2, 2]);
    expect(run(4445, [...copy.slice(1), ...wire], opts).sids).toEqual([2, 2]);
    // a connection that is not SMB keeps the depth: the same calls straight over TCP past it are not seen
    const raw: Wire = [
      // 8 requests before any bind (no interface): DCE/RPC the session follows, 8 KB of it
      [0, new Array(8).fill(arr(request(0, 1, new Array(1000).fill(0)))).flat()],
      [0, arr(bind([[0, svcctl, 2]]))],
      [1, arr(bindAck([0]))],
      [0, arr(request(0, 12, [...Buffer.from('..EVIL..')]))],
    ];
    expect(run(4445, raw).sids).toEqual([2]);
    expect(run(4445, raw, opts).sids).toEqual([]);
  });

  it('a message in pieces is held, charged to the reassembly budget until it completes, all given back', () => {
    const msg = Uint8Array.from(wire[3]![1]);
    const held = (ruleText: string) => {
      const e = new Engine(loadRules(ruleText, 'r').rules, { streamRelease: 'immediate' });
      let ts = 0;
      for (const p of handshake('10.0.0.1', '10.0.0.2', 40000, 445)) e.inspect(p, ts++);
      const C = { src: '10.0.0.1', dst: '10.0.0.2', sp: 40000, dp: 445 };
      e.inspect(pkt({ ...C, flags: ACK | PSH, seq: 1001, ack: 5001, payload: msg.subarray(0, 100) }), ts++);
      const during = e.budget.bytes;
      e.finish();
      return { during, after: e.budget.bytes };
    };
    const smb = held(rules[0]!);
    const plain = held('alert tcp any any -> any 445 (content:"SMB"; sid:1;)');
    // the message's bytes past its 4-byte NetBIOS header, held whole once its first bytes showed a pipe's
    expect(msg.length).toBeGreaterThan(4 + smbPeekBytes);
    expect(smb.during - plain.during).toBe(msg.length - 4);
    expect([smb.after, plain.after]).toEqual([0, 0]);
  });

  it('strata ids finds them on one thread and on 2 workers, and counts them in --stats', async () => {
    const frames = conversationFrames(
      wire.map(([dir, m]) => [dir, Uint8Array.from(m)]),
      { serverPort: 445 },
    );
    const dir = mkdtempSync(join(tmpdir(), 'ids-smb-'));
    try {
      writeFileSync(
        join(dir, 'smb.pcap'),
        encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data }))),
      );
      writeFileSync(join(dir, 'smb.rules'), `${rules[0]}\n`);
      for (const more of [[], ['--workers', '2']]) {
        const c = captureIo('', {}, dir);
        const args = ['--rules', 'smb.rules', 'smb.pcap', '--stats', 's.json', ...more];
        expect(await runCommand(commands[0]!, args, c.io)).toBe(0);
        expect(c.stdout().match(/\[1:1:\d+\]/g)).toHaveLength(1);
        expect(JSON.parse(readFileSync(join(dir, 's.json'), 'utf8')).dceSmbRequests).toBe(2);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const { shared, have } = sharedIds('traces/suricata-verify-mix.pcap');
  /** Components of the suricata-verify mix (their packets, by the trace's index), read in one pass. */
  async function components(sources: string[]): Promise<Packet[][]> {
    const index = JSON.parse(readFileSync(`${shared}traces/suricata-verify-mix.index.json`, 'utf8'));
    const spans = sources.map((src) => {
      const c = index.components.find((x: { source: string }) => x.source.endsWith(src));
      return { first: c.first_packet as number, last: c.first_packet + c.packets - 1 };
    });
    const out: Packet[][] = sources.map(() => []);
    const end = Math.max(...spans.map((x) => x.last));
    let n = 0;
    for await (const p of readCapture(createReadStream(`${shared}traces/suricata-verify-mix.pcap`))) {
      n++;
      spans.forEach((x, k) => {
        if (n >= x.first && n <= x.last) out[k]!.push({ ...p, data: Uint8Array.from(p.data) });
      });
      if (n === end) break;
    }
    return out;
  }

  // suricata-verify's cases for these captures (OISF/suricata-verify, tests/<name>/test.rules and
  // test.yaml): the same interface and opnum, their expected alert counts. Suricata's dcerpc keywords
  // without flow:to_server also match the response (its "both sides match"): twice a call there, once here.
  it.runIf(have)(
    'captured SMB sessions of suricata-verify: the calls its cases expect',
    async () => {
      const cases: [string, string, number][] = [
        // dcerpc-smb-test-01 (SMB1, flow:to_server: 2 alerts expected)
        ['dcerpc-smb-test-01/input.pcap', `dce_iface:uuid ${svcctl}; dce_opnum:"15"`, 2],
        // dcerpc/dcerpc-smb-ctxid (SMB2: 2 alerts, both sides, for one call)
        ['dcerpc/dcerpc-smb-ctxid/input.pcap', `dce_iface:uuid ${atsvc}; dce_opnum:"0"`, 1],
        // smb-dce_iface (SMB1: 6 alerts, both sides, for three calls)
        ['smb-dce_iface/input.pcap', 'dce_iface:uuid 12345678-1234-abcd-ef00-0123456789ab', 3],
        // smb2-04, a capture that starts mid-session (at.exe scheduling a job: NetrJobAdd)
        ['smb2-04/20171220_smb_at_schedule.pcap', `dce_iface:uuid ${atsvc}; dce_opnum:"0"`, 1],
      ];
      const captures = await components(cases.map((c) => c[0]));
      for (const [k, [source, opts, want]] of cases.entries()) {
        const r = loadRules(`alert tcp any any -> any any (flow:to_server; ${opts}; sid:1;)`, 'r').rules;
        const res = await runCapture(Readable.from([encodePcap(captures[k]!)]), r, {
          validateChecksums: false,
          midstream: true,
        });
        expect([source, res.alerts.length]).toEqual([source, want]);
        expect(res.stats.dceSmbRequests).toBeGreaterThanOrEqual(want);
      }
    },
    60_000,
  );

  // the captured sessions (psexec, at, net user, ctxid, lsarpc; SMB1 and SMB2) damaged at random: bytes
  // changed, packets cut, SMB and DCE/RPC headers with lengths past every bound spliced in, packets
  // replayed late. Nothing may throw, and no rule or packet inspection may fault.
  it.runIf(have)(
    'damaged SMB captures: no throw, no fault',
    async () => {
      const captures = await components([
        'dcerpc-smb-test-01/input.pcap',
        'dcerpc/dcerpc-smb-ctxid/input.pcap',
        'smb-dce_iface/input.pcap',
        'smb2-04/20171220_smb_at_schedule.pcap',
        'smb2-06/20171220_smb_net_user.pcap',
        'smb2-07/20171220_smb_psexec_add_user.pcap',
      ]);
      const packets = captures.flat();
      const words = [
        '\x00\xff\xff\xff\xffSMB',
        '\x00\x00\x00\x40\xffSMB\x2f\x00\x00\x00\x00',
        '\x00\x00\x01\x00\xfeSMB\x40\x00',
        '\xfdSMB',
        '\x85\x00\x00\x00',
        '\x05\x00\x00\x03\x10\x00\x00\x00\xff\xff\x00\x00',
        '\x05\x00\x0b\x03\x10\x00\x00\x00\x48\x00\x00\x00',
        '\xff\xff\xff\xff\xff\xff\xff\xff',
      ];
      const r = loadRules(
        [
          ...rules,
          `alert tcp any any -> any [139,445] (dce_iface:uuid ${atsvc}, any_frag; dce_stub_data; byte_test:4,>,0,0,dce; sid:3;)`,
          'alert tcp any any -> any [139,445] (dce_opnum:"0-65535"; dce_stub_data; content:"|00|"; sid:4;)',
        ].join('\n'),
        'r',
      ).rules;
      // undamaged, they are SMB sessions with DCE/RPC calls in their pipes
      const whole = new Pipeline(r, { validateChecksums: false, midstream: true });
      for (const p of packets) whole.push(p);
      whole.finish();
      expect([packets.length, whole.engine.stats.dceSmbRequests]).toEqual([821, 87]);
      await fc.assert(
        fc.asyncProperty(fc.integer(), fc.constantFrom(0.05, 0.2, 0.5), async (seed, rate) => {
          const pipe = new Pipeline(r, { validateChecksums: false, midstream: true });
          for (const p of damaged(packets, rate, mulberry32(seed), words)) pipe.push(p);
          pipe.finish();
          expect(pipe.packets).toBe(packets.length);
          expect([...pipe.engine.ruleFaults]).toEqual([]);
          expect(pipe.engine.packetFaults).toEqual([]);
        }),
        { numRuns: 12 },
      );
    },
    60_000,
  );
});
