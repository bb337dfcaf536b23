import type { AddressInfo, Server } from 'node:net';

/**
 * `server.listen(port, host)` as a promise of the port it got (0 picks a free one) that rejects when the
 * listen fails (EADDRINUSE, EACCES): a bare `listen` with no 'error' listener ends the process with an
 * unhandled 'error' event instead of a message. The listener goes once the server listens, so later errors
 * reach the server's own listeners.
 */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
