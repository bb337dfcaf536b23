import { createServer, type Server, type Socket } from 'node:net';

/** A request as a fake server received it. */
export interface FakeRequest {
  cmd: number;
  flags: number;
  handle: Buffer;
  offset: number;
  length: number;
}

export interface FakeNbdOptions {
  size: number;
  /** Answer STRUCTURED_REPLY with ACK (default) or ERR_UNSUP (a server of before). */
  structured?: boolean;
  /** The contexts SET_META_CONTEXT selects, as [id, name] (default: base:allocation as 1). */
  contexts?: [number, string][];
  /** Called with each transmission request (a WRITE's payload is read and dropped). */
  onRequest: (req: FakeRequest, sock: Socket) => void;
}

const REPLY_MAGIC = 0x3e889045565a9n;

/**
 * An NBD server on 127.0.0.1 that does the fixed newstyle handshake by the book (STRUCTURED_REPLY,
 * SET_META_CONTEXT, GO) and hands each request to `onRequest`, which answers as it likes: for replies a
 * real server would never send.
 */
export async function fakeNbd(opts: FakeNbdOptions): Promise<{ port: number; close: () => Promise<void> }> {
  const socks = new Set<Socket>();
  const server: Server = createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(0x4e42444d41474943n, 0);
    hello.writeBigUInt64BE(0x49484156454f5054n, 8);
    hello.writeUInt16BE(3, 16);
    s.write(hello);
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'options' | 'requests' = 'flags';
    const reply = (opt: number, type: number, data = Buffer.alloc(0)) => {
      const h = Buffer.alloc(20);
      h.writeBigUInt64BE(REPLY_MAGIC, 0);
      h.writeUInt32BE(opt, 8);
      h.writeUInt32BE(type, 12);
      h.writeUInt32BE(data.length, 16);
      s.write(Buffer.concat([h, data]));
    };
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        if (phase === 'flags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (buf.length < 16) return;
          const opt = buf.readUInt32BE(8);
          const len = buf.readUInt32BE(12);
          if (buf.length < 16 + len) return;
          buf = buf.subarray(16 + len);
          if (opt === 8) reply(8, opts.structured === false ? 0x80000001 : 1);
          else if (opt === 10) {
            for (const [id, name] of opts.contexts ?? [[1, 'base:allocation']]) {
              const d = Buffer.alloc(4 + Buffer.byteLength(name));
              d.writeUInt32BE(id, 0);
              d.write(name, 4);
              reply(10, 4, d);
            }
            reply(10, 1);
          } else if (opt === 7) {
            const info = Buffer.alloc(12);
            info.writeBigUInt64BE(BigInt(opts.size), 2);
            info.writeUInt16BE(1, 10);
            reply(7, 3, info);
            reply(7, 1);
            phase = 'requests';
          } else reply(opt, 0x80000001);
        } else {
          if (buf.length < 28) return;
          const cmd = buf.readUInt16BE(6);
          const length = buf.readUInt32BE(24);
          const total = 28 + (cmd === 1 ? length : 0);
          if (buf.length < total) return;
          const req = {
            cmd,
            flags: buf.readUInt16BE(4),
            handle: Buffer.from(buf.subarray(8, 16)),
            offset: Number(buf.readBigUInt64BE(16)),
            length,
          };
          buf = buf.subarray(total);
          if (cmd === 2) return void s.end();
          opts.onRequest(req, s);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A structured reply chunk: magic, flags, type, the request's handle, the payload. */
export function chunk(handle: Buffer, flags: number, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(0x668e33ef, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  handle.copy(h, 8);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

/** A BLOCK_STATUS payload: the context id, then [length, flags] descriptors. */
export function statusPayload(id: number, extents: [number, number][]): Buffer {
  const b = Buffer.alloc(4 + 8 * extents.length);
  b.writeUInt32BE(id, 0);
  extents.forEach(([len, flags], i) => {
    b.writeUInt32BE(len, 4 + 8 * i);
    b.writeUInt32BE(flags, 8 + 8 * i);
  });
  return b;
}

/** An OFFSET_DATA payload: the offset, then the bytes. */
export function dataPayload(offset: number, bytes: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(offset), 0);
  return Buffer.concat([b, bytes]);
}
