import type { Socket } from 'node:net';

/**
 * Resumes a paused socket and counts what arrives until `bytes` have (the replies a test left unread while
 * it looked at the server); resolves with the count.
 */
export function readBytes(sock: Socket, bytes: number): Promise<number> {
  let got = 0;
  return new Promise<number>((resolve) => {
    sock.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= bytes) resolve(got);
    });
    sock.resume();
  });
}
