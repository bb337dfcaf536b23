// LogServers and a sequencer on 127.0.0.1 in this process, as the NativeLoglet tests start them.
import { join } from 'node:path';
import { LogServer, type LogServerOptions, Sequencer } from '../../src/index.js';

/** `count` LogServers listening on 127.0.0.1, in directories `${prefix}0`, `${prefix}1`, ... under `dir`. */
export async function startLogServers(dir: string, count = 3, o: LogServerOptions = {}, prefix = 'ls') {
  const servers = Array.from({ length: count }, (_, i) => new LogServer(join(dir, `${prefix}${i}`), o));
  const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
  return { servers, addrs };
}

/** A sequencer listening on 127.0.0.1 over `addrs`, and its address. */
export async function startSequencer(addrs: string[]): Promise<{ seq: Sequencer; addr: string }> {
  const seq = new Sequencer(addrs);
  return { seq, addr: `127.0.0.1:${await seq.listen(0)}` };
}
