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
  /** The packet's canonical 5-tuple (38 bytes, `writeTupleKey`) and 2 bytes of 0, as 10 words to compare. */
  private readonly key = new Uint8Array(40);
  private readonly words = new Uint32Array(this.key.buffer);
  /** What is hashed: the 38 bytes of the key. */
  private readonly tuple = this.key.subarray(0, 38);
  private readonly out = new Uint32Array(2);
  /**
   * The flows of the last two packets routed by hash: their keys' words and their workers (-1: none yet).
   * Most packets belong to the flow of one of the two packets before them (85% on ndpi-mix-a, 77% to the
   * one just before), and those skip the hash.
   */
  private recentKey0 = new Uint32Array(10);
  private recentKey1 = new Uint32Array(10);
  private recentWorker0 = -1;
  private recentWorker1 = -1;
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
    writeTupleKey(this.key, d);
    const w = this.words;
    if (this.recentWorker0 >= 0 && sameWords(w, this.recentKey0)) return this.recentWorker0;
    // the flow before last comes first now; the one it displaces second
    const k1 = this.recentKey1;
    let worker = this.recentWorker1;
    if (worker < 0 || !sameWords(w, k1)) {
      worker = (hash64Words(this.hashKey, this.tuple, this.out)[0]! >>> 0) % this.workers;
      k1.set(w);
    }
    this.recentKey1 = this.recentKey0;
    this.recentWorker1 = this.recentWorker0;
    this.recentKey0 = k1;
    this.recentWorker0 = worker;
    return worker;
  }
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== b[i]) return false;
  return true;
}
