/**
 * Which worker of a parallel run a packet goes to: its flow's 5-tuple in canonical order (so both
 * directions agree) through a keyed HighwayHash-64, modulo the workers; an FTP data connection goes to its
 * control connection's worker when rules inspect FTP files (`FtpRouter`). A function of the packets seen so
 * far and the key only: each worker of a run that reads the capture itself routes every packet as every
 * other worker does, so each one knows its own packets without being sent them.
 */
import { hash64Words } from '@strata/highwayhash';
import type { Decoded } from './decode.js';
import { ftpPortTest } from './detect.js';
import { defaultVars } from './engine-api.js';
import { writeTupleKey } from './flow.js';
import { FtpRouter } from './ftp.js';
import type { Rule } from './rules.js';

/** Whether a rule set inspects FTP files (then data connections follow their control connection). */
export function routesFtp(rules: Rule[]): boolean {
  return rules.some(
    (r) =>
      r.options.some((o) => o.keyword === 'file_data') &&
      r.options.some((o) => o.keyword === 'service' && /\bftp(-data)?\b/.test(o.value ?? '')),
  );
}

export class FlowSharder {
  private readonly key = new Uint8Array(38);
  private readonly out = new Uint32Array(2);
  private readonly ftpControl: ((port: number) => boolean) | undefined;
  private readonly ftp: FtpRouter | undefined;
  /**
   * The router learns of data connections only from control-connection packets with data: until the
   * first, every packet goes where its hash sends it, and the router is not asked (it would make the
   * addresses' text and a key per TCP packet).
   */
  private ftpLive = false;

  constructor(
    readonly workers: number,
    private readonly hashKey: Uint8Array,
    /** `routesFtp` of the rules, and the run's variables (for `$FTP_PORTS`). */
    ftp: { vars: Record<string, string> | undefined } | undefined,
  ) {
    this.ftpControl = ftp && ftpPortTest({ ...defaultVars, ...ftp.vars });
    this.ftp = this.ftpControl && new FtpRouter(this.ftpControl);
  }

  /** The worker of a decoded packet (called once per packet, in capture order). */
  of(d: Decoded): number {
    const hashed = this.hashed(d);
    const ftp = this.ftp;
    if (!ftp || d.proto !== 6) return hashed;
    if (!this.ftpLive) {
      if (d.payload.length === 0 || !(this.ftpControl!(d.srcPort) || this.ftpControl!(d.dstPort)))
        return hashed;
      this.ftpLive = true;
    }
    return ftp.route(
      {
        src: d.src,
        sp: d.srcPort,
        dst: d.dst,
        dp: d.dstPort,
        syn: (d.tcpFlags & 0x12) === 0x02,
        payload: d.payload,
      },
      hashed,
    );
  }

  private hashed(d: Decoded): number {
    const k = this.key;
    writeTupleKey(k, d);
    const w = hash64Words(this.hashKey, k, this.out);
    return (w[0]! >>> 0) % this.workers;
  }
}
