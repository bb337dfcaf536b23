/**
 * The FTP control connection (RFC 959, RFC 2428), followed far enough to know its data connections, so
 * that rules with `file_data` on the ftp service inspect the files they carry:
 *
 * - passive: the server's `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` or `229 Entering Extended
 *   Passive Mode (|||port|)` names the address and port the client will connect to;
 * - active: the client's `PORT h1,h2,h3,h4,p1,p2` or `EPRT |1|addr|port|` (`|2|` for IPv6) names the
 *   address and port the server will connect to, once the server accepts it (a 2xx reply).
 *
 * Each gives an expected data connection: the next TCP connection to that address and port is an FTP data
 * connection. Lines longer than `ftpLineBytesMax` are skipped.
 */

/** An expected data connection: its responder's address and port. */
export interface FtpExpectation {
  addr: string;
  port: number;
}

export const ftpLineBytesMax = 512;

/** One control connection; `feed` returns the data connections its new bytes announce. */
export class FtpControl {
  private readonly partial: [string, string] = ['', ''];
  /** An active-mode address waiting for the server's reply. */
  private pendingPort: FtpExpectation | undefined;

  /**
   * `dir` 0: client to server, 1: server to client; `serverAddr` is the control connection's server (EPSV
   * names no address; some servers behind NAT announce an internal one: both are expected).
   */
  feed(dir: 0 | 1, data: Uint8Array, serverAddr: string): FtpExpectation[] {
    const out: FtpExpectation[] = [];
    let text = this.partial[dir] + Buffer.from(data.buffer, data.byteOffset, data.length).toString('latin1');
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      const line = text.slice(0, nl).replace(/\r$/, '');
      text = text.slice(nl + 1);
      if (line.length <= ftpLineBytesMax) this.line(dir, line, serverAddr, out);
      nl = text.indexOf('\n');
    }
    // a line past the bound is dropped up to its end
    this.partial[dir] = text.length > ftpLineBytesMax ? '' : text;
    return out;
  }

  private line(dir: 0 | 1, line: string, serverAddr: string, out: FtpExpectation[]): void {
    if (dir === 0) {
      const port = /^PORT\s+(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\s*$/i.exec(line);
      const eprt = /^EPRT\s+\|([12])\|([^|]+)\|(\d+)\|\s*$/i.exec(line);
      if (port) this.pendingPort = hostPort(port.slice(1, 7).map(Number));
      else if (eprt && Number(eprt[3]) > 0 && Number(eprt[3]) < 65536)
        this.pendingPort = { addr: eprt[2]!.toLowerCase(), port: Number(eprt[3]) };
      return;
    }
    const code = /^(\d{3})[ -]/.exec(line)?.[1];
    if (code === undefined) return;
    if (this.pendingPort && code.startsWith('2')) {
      out.push(this.pendingPort);
      this.pendingPort = undefined;
    } else if (this.pendingPort && (code.startsWith('4') || code.startsWith('5')))
      this.pendingPort = undefined;
    if (code === '227') {
      const m = /(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)/.exec(line);
      const e = m && hostPort(m.slice(1, 7).map(Number));
      if (e) {
        out.push(e);
        if (e.addr !== serverAddr) out.push({ addr: serverAddr, port: e.port });
      }
    } else if (code === '229') {
      const m = /\((.)\1\1(\d+)\1\)/.exec(line);
      const port = Number(m?.[2]);
      if (m && port > 0 && port < 65536) out.push({ addr: serverAddr, port });
    }
  }
}

function hostPort(n: number[]): FtpExpectation | undefined {
  if (n.some((x) => x > 255)) return undefined;
  const port = n[4]! * 256 + n[5]!;
  return port > 0 ? { addr: n.slice(0, 4).join('.'), port } : undefined;
}

/** Data connections waiting and routed at most, per `FtpRouter`. */
export const ftpRoutesMax = 4096;

/**
 * Keeps an FTP data connection on the worker that follows its control connection (worker threads shard
 * flows by hash; only that worker's engine expects the data connection). Whoever routes the packets
 * (`FlowSharder`: the main thread, or with `reader: 'workers'` every worker, each over every packet, so
 * that all of them agree) reads the control connections' packets as they come (no reassembly: a command or
 * reply split across packets, or out of order, is missed and its data connection goes where its hash sends
 * it) and sends each announced data connection's packets to the control connection's worker.
 */
export class FtpRouter {
  private readonly controls = new Map<string, FtpControl>();
  /** Announced responder `addr:port` -> worker. */
  private readonly expected = new Map<string, number>();
  /** Data connection (canonical endpoints) -> worker. */
  private readonly routed = new Map<string, number>();

  constructor(private readonly isControlPort: (port: number) => boolean) {}

  /**
   * The worker for a TCP packet (`hashed`: where its hash sends it). `syn`: the packet opens a connection
   * (SYN without ACK), from `src` to `dst`.
   */
  route(
    p: { src: string; sp: number; dst: string; dp: number; syn: boolean; payload: Uint8Array },
    hashed: number,
  ): number {
    const flow =
      p.src < p.dst || (p.src === p.dst && p.sp <= p.dp)
        ? `${p.src}:${p.sp}-${p.dst}:${p.dp}`
        : `${p.dst}:${p.dp}-${p.src}:${p.sp}`;
    if (this.routed.size > 0) {
      const w = this.routed.get(flow);
      if (w !== undefined) return w;
    }
    if (p.syn && this.expected.size > 0) {
      const k = `${p.dst}:${p.dp}`;
      const w = this.expected.get(k);
      if (w !== undefined) {
        this.expected.delete(k);
        bounded(this.routed, flow, w);
        return w;
      }
    }
    const toServer = this.isControlPort(p.dp);
    if (p.payload.length > 0 && (toServer || this.isControlPort(p.sp))) {
      let c = this.controls.get(flow);
      if (!c) {
        c = new FtpControl();
        bounded(this.controls, flow, c);
      }
      for (const e of c.feed(toServer ? 0 : 1, p.payload, toServer ? p.dst : p.src))
        bounded(this.expected, `${e.addr}:${e.port}`, hashed);
    }
    return hashed;
  }
}

/** Sets `k` in a map of at most `ftpRoutesMax` entries (the oldest dropped). */
function bounded<V>(m: Map<string, V>, k: string, v: V): void {
  if (!m.has(k) && m.size >= ftpRoutesMax) m.delete(m.keys().next().value!);
  m.set(k, v);
}
