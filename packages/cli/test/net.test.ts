import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { listenOn } from '../src/index.js';

describe('listenOn', () => {
  it('gives the port; a port in use rejects (a bare listen ended the process), and the listener goes', async () => {
    const a = createServer();
    const port = await listenOn(a, 0, '127.0.0.1');
    expect(port).toBeGreaterThan(0);
    expect(a.listenerCount('error')).toBe(0);
    const b = createServer();
    await expect(listenOn(b, port, '127.0.0.1')).rejects.toMatchObject({ code: 'EADDRINUSE' });
    a.close();
    await once(a, 'close');
  });
});
