/**
 * The flow table: every packet's 5-tuple (protocol, both addresses, both ports), put in a canonical order so
 * both directions of a conversation find the same entry, is hashed with a keyed HighwayHash (the key is
 * random per table, so an attacker cannot aim collisions at one bucket) and looked up in a bucketized
 * cuckoo hash table: two candidate buckets of {@link slotsPerBucket} slots each, the two 32-bit halves of
 * the 64-bit hash choosing them. This is the shape of the flow table in Pigasus (Zhao et al., OSDI'20,
 * section 4: a cuckoo table in FPGA memory, after FlowBlaze) and of the hardware flow tables it cites.
 *
 * Bounds: at most `flowsMax` flows. A lookup touches at most 2 buckets; an insertion moves at most
 * {@link cuckooKicksMax} flows; when a new flow finds no room the least recently seen flow of the table is
 * evicted (the table holds `flowsMax` flows), or one the cuckoo walk displaced (it ended without a free
 * slot: rare below the 70% load `flowsMax` keeps).
 * Idle flows time out (per protocol and TCP state, Suricata's default flow-timeouts) and are swept a few
 * per packet, so expiry costs constant work per packet. The sweep follows time, not the table: one list
 * per timeout class in the order flows were last seen, expired from its head, so when a flow times out
 * (and its remaining stream data is inspected) depends on the packets alone, not on the random hash key.
 * (A sweep over slots had made alerts move between runs of one capture: ndpi-mix-a's sid 39729 came at
 * its packet 21,007, 24,785 or 34,311 depending on the process's key.) Every eviction goes through `onEvict`, so the
 * owner can flush what the flow still holds (stream data) before it is gone.
 *
 *   packet 5-tuple, VLAN ids, tunnel depth --canonical order--> key (48 bytes) --HighwayHash-64--> (lo, hi)
 *        bucket lo & mask: [slot slot slot slot]     bucket hi & mask: [slot slot slot slot]
 *
 * TCP state follows the handshake (SYN, SYN/ACK, ACK; RFC 9293 section 3.5), also the split (4-way)
 * handshake where the server answers a SYN with its own SYN, and closing (FIN from both sides, or RST).
 * Direction: the client is the side that sent the first SYN (or, for SYN/ACK seen first, its receiver;
 * for TCP begun mid-session, the end with the higher port; otherwise the first packet's sender: see
 * `receiverIsClient`); packets from the client are `to_server`.
 */
import { webcrypto } from 'node:crypto';
import { type HighwayKey, hash64Words } from '@strata/highwayhash';
import { type Decoded, Proto } from './decode.js';

export const slotsPerBucket = 4;
/** Flows displaced by one insertion at most. */
export const cuckooKicksMax = 32;
/** Idle flows expired per packet at most (the incremental sweep; an insertion with no room sweeps all). */
export const sweepFlowsPerPacket = 4;
/** Timeout classes (`FlowTable.classOf`): TCP new, established, closed; other protocols new, established. */
const expiryClasses = 5;
/**
 * Bytes in a canonical flow key: proto, address length, two (address[16], port[2]) endpoints, the
 * packet's first `flowVlansMax` VLAN ids (each plus one, big-endian; 0 where there is none), the
 * encapsulations undone to reach the packet (`Decoded.tunnels`, byte 44), and 3 bytes of 0.
 */
export const flowKeyBytes = 48;
/** VLAN ids a flow key holds (Suricata's flow hash takes three; Snort 3 one). */
export const flowVlansMax = 3;

export const TcpState = {
  none: 0,
  synSent: 1,
  synRecv: 2,
  established: 3,
  closing: 4,
  closed: 5,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

/** Idle timeouts in microseconds (Suricata's default flow-timeouts: tcp 60/600/60 s, others 30/300 s). */
export interface FlowTimeouts {
  tcpNewUs: number;
  tcpEstablishedUs: number;
  tcpClosedUs: number;
  newUs: number;
  establishedUs: number;
}

/** Largest `flowsMax` (2^24 flows: slot arrays of 2^25 entries, about 400 MiB with the tags). */
export const flowsMaxLimit = 2 ** 24;
/** Flows a table holds by default (`flowsMax`). */
export const flowsMaxDefault = 1 << 16;

export const defaultFlowTimeouts: FlowTimeouts = {
  tcpNewUs: 60e6,
  tcpEstablishedUs: 600e6,
  tcpClosedUs: 60e6,
  newUs: 30e6,
  establishedUs: 300e6,
};

/** Why a flow left the table; `reuse`: a SYN began a new session on its ports after it closed. */
export type EvictReason = 'timeout' | 'capacity' | 'shutdown' | 'reuse';

/** What one side of a TCP conversation has said about its sequence space. */
export interface TcpHalf {
  /** Initial sequence number, from this side's SYN or SYN/ACK (when `isnSet`). */
  isn: number;
  isnSet: boolean;
  fin: boolean;
  /** The last acknowledgment number this side sent (when `ackSet`): how far it has received the other. */
  lastAck: number;
  ackSet: boolean;
}

export interface FlowOptions {
  /** Pick up TCP sessions without a handshake (Suricata stream.midstream). */
  midstream?: boolean;
  /** Accept a TCP session seen in one direction only (Suricata stream.async-oneside). */
  asyncOneside?: boolean;
  /**
   * One flow for a 5-tuple whatever VLAN its packets carry. By default flows are told apart by their
   * first three VLAN ids, as Suricata (`vlan.use-for-tracking`) and Snort 3 (`packets.vlan_agnostic`) do:
   * overlapping addresses in different VLANs are different hosts, and a conversation captured on two
   * VLANs (routed between them) is two flows, not one whose every segment comes twice.
   */
  vlanAgnostic?: boolean;
  /**
   * One flow for a 5-tuple whatever tunnel depth its packets come at (`Decoded.tunnels`; Snort 3's flow
   * key holds none). By default the depth tells flows apart, as Suricata's flow hash and compare do (its
   * recursion level: "different tunnel layers can never get mixed up"): a conversation captured both
   * inside a tunnel and bare (on either side of its endpoint) is two flows, not one whose every segment
   * comes twice, and a packet in a tunnel cannot write into the stream of a bare flow of the same 5-tuple.
   */
  tunnelAgnostic?: boolean;
}

export class Flow<T = unknown> {
  state: TcpState = TcpState.none;
  /** The handshake completed (or the session was picked up midstream). */
  established = false;
  /**
   * `flow:established` for the packet being handled: the state before it, so the ACK that completes the
   * handshake is not itself established (as in Suricata, where a packet's flow flags are set before the
   * stream engine sees it); a midstream pick-up is established from its first packet.
   */
  establishedForPacket = false;
  /** Set once a packet was seen from each side. */
  readonly seen: [boolean, boolean] = [false, false];
  readonly tcp: [TcpHalf, TcpHalf] = [newHalf(), newHalf()];
  readonly packets: [number, number] = [0, 0];
  readonly bytes: [number, number] = [0, 0];
  firstUs: number;
  lastUs: number;
  /** flowbits, made when the first one is set (most flows never set one). */
  bits: Set<string> | undefined = undefined;
  /** What the owner keeps per flow (the engine: stream reassembly state). */
  data: T | undefined;
  /** The table's expiry list it is on (its timeout class; -1: none) and its neighbours there. */
  expiryClass = -1;
  expiryPrev: Flow<T> | undefined = undefined;
  expiryNext: Flow<T> | undefined = undefined;

  constructor(
    readonly id: number,
    readonly proto: number,
    /** Canonical key and its hash words (lo, hi): which buckets the flow may live in. */
    readonly key: Uint8Array,
    readonly h1: number,
    readonly h2: number,
    /** Client endpoint: address bytes (a copy) and port. */
    public clientAddr: Uint8Array,
    public clientPort: number,
    nowUs: number,
  ) {
    this.firstUs = nowUs;
    this.lastUs = nowUs;
  }

  /** Whether `d` was sent by the client (`to_server`). */
  fromClient(d: Decoded): boolean {
    return d.srcPort === this.clientPort && bytesEqual(d.srcAddr, this.clientAddr);
  }
}

function newHalf(): TcpHalf {
  return { isn: seqZero, isnSet: false, fin: false, lastAck: seqZero, ackSet: false };
}

/**
 * A sequence-number field's first value: 0 as a double (-0, which compares, adds and prints as 0), so the
 * field holds doubles from the first half on. Sequence numbers are 32-bit, and from 2^30 on not small
 * integers: a field that began with a small one changed representation at the first such value, which
 * deprecated the halves' shape and deoptimized the flow code built on it, in the first capture of a process.
 */
const seqZero = -0;

/** A slot tag: the hash's low word, never 0 (0 marks an empty slot). */
function tagOf(h1: number): number {
  return h1 >>> 0 || 1;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether the receiver of a flow's first packet is its client. TCP, as Snort 3 assigns roles
 * (`init_roles_tcp`): a SYN's sender is the client, a SYN/ACK's receiver; a first packet with neither (the
 * capture began mid-session) makes the end with the higher port the client, as servers listen on low
 * ports and clients send from ephemeral ones, and on a tie its sender. (Until 2026-12-07 the sender was
 * the client there, Suricata's pick-up without its later reversal by protocol detection: a capture that
 * began with a server's answer, on `--midstream`, put the server's data to_server and an HTTP response
 * where requests are parsed.) Other protocols: the sender.
 */
function receiverIsClient(d: Decoded): boolean {
  if (d.proto !== Proto.TCP) return false;
  const synAck = d.tcpFlags & 0x12;
  if (synAck === 0x02) return false;
  return synAck === 0x12 || d.dstPort > d.srcPort;
}

/**
 * Whether the canonical key `k` (see `FlowTable.keyOf`) is the flow of `d`: its 5-tuple in either order,
 * and its VLAN ids and tunnel depth where the table tells flows apart by them.
 */
function keyHolds(k: Uint8Array, d: Decoded, vlans: boolean, tunnels: boolean): boolean {
  const sa = d.srcAddr;
  const da = d.dstAddr;
  if (k[0] !== d.proto || k[1] !== sa.length) return false;
  if (tunnels && k[44] !== d.tunnels) return false;
  if (vlans && !vlansAt(k, d.vlans)) return false;
  return (
    (endpointAt(k, 2, sa, d.srcPort) && endpointAt(k, 20, da, d.dstPort)) ||
    (endpointAt(k, 2, da, d.dstPort) && endpointAt(k, 20, sa, d.srcPort))
  );
}

/** Whether the key's VLAN ids (from byte 38) are the first `flowVlansMax` of `vlans`. */
function vlansAt(k: Uint8Array, vlans: readonly number[]): boolean {
  for (let i = 0; i < flowVlansMax; i++) {
    const v = i < vlans.length ? vlans[i]! + 1 : 0;
    if (k[38 + 2 * i] !== v >> 8 || k[39 + 2 * i] !== (v & 0xff)) return false;
  }
  return true;
}

/** Whether the key's endpoint at `o` (address[16], port[2]) is address `a` and port `p`. */
function endpointAt(k: Uint8Array, o: number, a: Uint8Array, p: number): boolean {
  if (k[o + 16] !== p >> 8 || k[o + 17] !== (p & 0xff)) return false;
  for (let i = 0; i < a.length; i++) if (k[o + i] !== a[i]) return false;
  return true;
}

/** -1, 0, 1: (address, port) ordering for the canonical key. */
function compareEndpoint(a: Uint8Array, ap: number, b: Uint8Array, bp: number): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return ap === bp ? 0 : ap < bp ? -1 : 1;
}

/**
 * The 5-tuple of `d` in canonical order into k[0, 38): proto, address length, the low endpoint's address
 * (16 bytes, zero-padded) and port, then the high one's; both directions of a conversation write the same
 * bytes. Returns whether the source is the low end. (The flow key and the workers' shard key.)
 */
export function writeTupleKey(k: Uint8Array, d: Decoded): boolean {
  // byte loops: cheaper than fill() and set() for keys this short (one per packet)
  const sa = d.srcAddr;
  const da = d.dstAddr;
  const n = sa.length;
  k[0] = d.proto;
  k[1] = n;
  const srcLow = compareEndpoint(sa, d.srcPort, da, d.dstPort) <= 0;
  const a = srcLow ? sa : da;
  const b = srcLow ? da : sa;
  for (let i = 0; i < 16; i++) {
    k[2 + i] = i < n ? a[i]! : 0;
    k[20 + i] = i < n ? b[i]! : 0;
  }
  const ap = srcLow ? d.srcPort : d.dstPort;
  const bp = srcLow ? d.dstPort : d.srcPort;
  k[18] = ap >> 8;
  k[19] = ap & 0xff;
  k[36] = bp >> 8;
  k[37] = bp & 0xff;
  return srcLow;
}

/**
 * The flow tables' default key: random, drawn once per thread (so no one outside can choose flows that
 * collide), and the same for every table of the thread. A key of its own per table cost each new engine
 * a deoptimization of the hash call (the optimized code had only ever seen one key) and its flows' first
 * packets hashed in the interpreter. Alerts never depend on the key (see the flow table's eviction order).
 */
const threadHashKey = webcrypto.getRandomValues(new Uint8Array(32));

export interface FlowTableOptions<T> extends FlowOptions {
  /** Bound on live flows (default 65,536). */
  flowsMax?: number;
  /** 256-bit HighwayHash key; by default this thread's random one (`threadHashKey`). */
  hashKey?: HighwayKey;
  timeouts?: Partial<FlowTimeouts>;
  /**
   * Called for every flow leaving the table, before it is gone, with the table's `owner`: one function can
   * serve every table (a closure per table made code optimized on one table deoptimize, "wrong call
   * target", at the next table's first eviction).
   */
  onEvict?: (flow: Flow<T>, reason: EvictReason, owner: unknown) => void;
  /** Handed to `onEvict` (the table does nothing else with it). */
  owner?: unknown;
}

export interface FlowTableStats {
  flows: number;
  created: number;
  evicted: Record<EvictReason, number>;
  /** Insertions that needed cuckoo displacement. */
  kicked: number;
}

/** A bounded, keyed-hash, bucketized cuckoo flow table with idle timeouts and TCP state tracking. */
export class FlowTable<T = unknown> {
  readonly flowsMax: number;
  private readonly slots: (Flow<T> | undefined)[];
  /** Per slot: a nonzero tag from the flow's hash (0 = empty), checked before the flow object. */
  private readonly slotTag: Uint32Array;
  private readonly bucketMask: number;
  private readonly hashKey: HighwayKey;
  /** Idle timeouts by class (`classOf`): TCP new, established, closed; other protocols new, established. */
  private readonly classTimeouts: Float64Array;
  private readonly scratchKey = new Uint8Array(flowKeyBytes);
  /** Whether keys hold VLAN ids (not `vlanAgnostic`) and the tunnel depth (not `tunnelAgnostic`). */
  private readonly vlans: boolean;
  private readonly tunnels: boolean;
  private readonly hashOut = new Uint32Array(2);
  /** Per timeout class, its flows in the order they were last seen (head: the least recently). */
  private readonly expiryHead: (Flow<T> | undefined)[] = new Array(expiryClasses).fill(undefined);
  private readonly expiryTail: (Flow<T> | undefined)[] = new Array(expiryClasses).fill(undefined);
  /**
   * Per timeout class, its head's `lastUs` (+Infinity for an empty list): the sweep before every packet
   * reads these numbers, not the heads, flows seen long ago (cold in the cache: 40% of `trackFlow`'s time
   * on ndpi-mix-a went into that check). A flow in list c is of class c (every change of what `classOf`
   * reads is followed by `touchExpiry`), so its timeout is `classTimeouts[c]`.
   */
  private readonly expiryHeadLast = new Float64Array(expiryClasses).fill(Number.POSITIVE_INFINITY);
  /**
   * No flow expires before this time (at most the earliest head's `lastUs` plus its class's timeout, less
   * 1 us against rounding): the sweep before a packet seen earlier reads nothing else. A head moved later
   * leaves it low (the next sweep reads the lists and sets it again); a head set earlier lowers it.
   */
  private sweepAfter = Number.NEGATIVE_INFINITY;
  /**
   * The flows of the last two packets (most recent first; undefined when none or evicted since): a packet
   * mostly belongs to one of them (a transfer, a request and its answer: 75% of ndpi-mix-a's), and is then
   * found without hashing its key. A flow leaving the table leaves this list (`gone`).
   */
  private recent0: Flow<T> | undefined;
  private recent1: Flow<T> | undefined;
  private nextId = 1;
  private rng = 0x9e3779b9;
  readonly stats: FlowTableStats = {
    flows: 0,
    created: 0,
    evicted: { timeout: 0, capacity: 0, shutdown: 0, reuse: 0 },
    kicked: 0,
  };

  /**
   * `opts.onEvict` and `opts.owner`, read at every eviction from fields of the table's own shape: read
   * from `opts`, an object literal whose `owner` field a later engine's options generalized, the first
   * flow code optimized on them was deoptimized when the next engine was built.
   */
  private readonly onEvict: FlowTableOptions<T>['onEvict'];
  private readonly owner: unknown;

  constructor(readonly opts: FlowTableOptions<T> = {}) {
    this.vlans = opts.vlanAgnostic !== true;
    this.tunnels = opts.tunnelAgnostic !== true;
    this.onEvict = opts.onEvict;
    this.owner = opts.owner;
    this.flowsMax = opts.flowsMax ?? flowsMaxDefault;
    // above the limit the slots' arrays were allocated anyway: "Invalid array length" from 2^30, an
    // allocation of gigabytes below it
    if (!Number.isInteger(this.flowsMax) || this.flowsMax < 1 || this.flowsMax > flowsMaxLimit)
      throw new RangeError(`flowsMax must be an integer from 1 to ${flowsMaxLimit}, got ${this.flowsMax}`);
    // ~70% load at flowsMax keeps the cuckoo walks short
    let buckets = 2;
    while (buckets * slotsPerBucket * 0.7 < this.flowsMax) buckets *= 2;
    this.bucketMask = buckets - 1;
    this.slots = new Array(buckets * slotsPerBucket).fill(undefined);
    this.slotTag = new Uint32Array(buckets * slotsPerBucket);
    this.hashKey = opts.hashKey ?? threadHashKey;
    const t = { ...defaultFlowTimeouts, ...opts.timeouts };
    // NaN kept every flow of its class until the table was full, a negative one expired it at the next
    // packet, and a misspelt name was ignored
    for (const [k, v] of Object.entries(opts.timeouts ?? {})) {
      if (!Object.hasOwn(defaultFlowTimeouts, k))
        throw new RangeError(
          `flow timeouts: unknown '${k}' (one of ${Object.keys(defaultFlowTimeouts).join(', ')})`,
        );
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0))
        throw new RangeError(`flow timeouts: ${k} must be microseconds >= 0, got ${String(v)}`);
    }
    this.classTimeouts = Float64Array.of(
      t.tcpNewUs,
      t.tcpEstablishedUs,
      t.tcpClosedUs,
      t.newUs,
      t.establishedUs,
    );
  }

  get size(): number {
    return this.stats.flows;
  }

  /** Builds the canonical key of `d` in the scratch buffer; returns whether the source is the low end. */
  private keyOf(d: Decoded): boolean {
    const k = this.scratchKey;
    const srcLow = writeTupleKey(k, d);
    const vlans = d.vlans;
    for (let i = 0; i < flowVlansMax; i++) {
      const v = this.vlans && i < vlans.length ? vlans[i]! + 1 : 0;
      k[38 + 2 * i] = v >> 8;
      k[39 + 2 * i] = v & 0xff;
    }
    k[44] = this.tunnels ? d.tunnels : 0;
    return srcLow;
  }

  private bucketsOf(lo: number, hi: number): [number, number] {
    const b1 = lo & this.bucketMask;
    let b2 = hi & this.bucketMask;
    if (b2 === b1) b2 = b1 ^ 1;
    return [b1, b2];
  }

  private timeoutOf(f: Flow<T>): number {
    return this.classTimeouts[this.classOf(f)]!;
  }

  private expired(f: Flow<T>, nowUs: number): boolean {
    return nowUs - f.lastUs > this.timeoutOf(f);
  }

  /** `f`'s timeout class (its expiry list): `classTimeouts`' index; the sweep goes through them in order. */
  classOf(f: Flow<T>): number {
    if (f.proto === Proto.TCP) return f.state === TcpState.closed ? 2 : f.established ? 1 : 0;
    return f.seen[0] && f.seen[1] ? 4 : 3;
  }

  private unlinkExpiry(f: Flow<T>): void {
    const c = f.expiryClass;
    if (c < 0) return;
    const p = f.expiryPrev;
    const n = f.expiryNext;
    if (p) p.expiryNext = n;
    else this.setHead(c, n);
    if (n) n.expiryPrev = p;
    else this.expiryTail[c] = p;
    f.expiryPrev = undefined;
    f.expiryNext = undefined;
    f.expiryClass = -1;
  }

  /** `f` was just seen: to the end of its class's list (moving lists when its state changed its class). */
  private touchExpiry(f: Flow<T>): void {
    const c = this.classOf(f);
    if (f.expiryClass === c && this.expiryTail[c] === f) {
      // already last; also first when alone, and then its later lastUs moves the head's time
      if (this.expiryHead[c] === f) this.expiryHeadLast[c] = f.lastUs;
      return;
    }
    this.unlinkExpiry(f);
    const t = this.expiryTail[c];
    f.expiryClass = c;
    f.expiryPrev = t;
    if (t) t.expiryNext = f;
    else this.setHead(c, f);
    this.expiryTail[c] = f;
  }

  private setHead(c: number, f: Flow<T> | undefined): void {
    this.expiryHead[c] = f;
    this.expiryHeadLast[c] = f ? f.lastUs : Number.POSITIVE_INFINITY;
    if (f) this.sweepAfter = Math.min(this.sweepAfter, f.lastUs + this.classTimeouts[c]! - 1);
  }

  private evictSlot(i: number, reason: EvictReason): void {
    const f = this.slots[i]!;
    this.slots[i] = undefined;
    this.slotTag[i] = 0;
    this.stats.flows--;
    this.stats.evicted[reason]++;
    this.gone(f, reason);
  }

  /** `f` has left the table (every eviction ends here): no longer a recent flow; the owner is told. */
  private gone(f: Flow<T>, reason: EvictReason): void {
    this.unlinkExpiry(f);
    if (this.recent0 === f) this.recent0 = undefined;
    if (this.recent1 === f) this.recent1 = undefined;
    this.onEvict?.(f, reason, this.owner);
  }

  /** The flow of `d`, if it is in the table (no state change). */
  find(d: Decoded): Flow<T> | undefined {
    this.keyOf(d);
    const w = hash64Words(this.hashKey, this.scratchKey, this.hashOut);
    return this.findKey(w[0]!, w[1]!);
  }

  private findKey(lo: number, hi: number): Flow<T> | undefined {
    // the hot path: no arrays, two buckets of four slots
    const b1 = lo & this.bucketMask;
    let b2 = hi & this.bucketMask;
    if (b2 === b1) b2 = b1 ^ 1;
    const tag = tagOf(lo);
    for (let k = 0; k < 2; k++) {
      const start = (k === 0 ? b1 : b2) * slotsPerBucket;
      for (let s = start; s < start + slotsPerBucket; s++) {
        // the tag array is compact: a miss costs no visit to the flow object
        if (this.slotTag[s] !== tag) continue;
        const f = this.slots[s];
        if (f !== undefined && f.h1 === lo && f.h2 === hi && bytesEqual(f.key, this.scratchKey)) return f;
      }
    }
    return undefined;
  }

  /**
   * The flow of `d`, created when new, with its TCP state advanced by `d`; also which side sent `d`.
   * `nowUs` is the packet's capture time: it drives timeouts. `updateState` false (a packet with a bad
   * checksum) leaves the TCP state as it was.
   */
  track(d: Decoded, nowUs: number, updateState = true): { flow: Flow<T>; toServer: boolean } {
    const flow = this.trackFlow(d, nowUs, updateState);
    return { flow, toServer: this.toServer };
  }

  /** Which side sent the packet `trackFlow` took last: the client (true) or the server. */
  toServer = false;

  /**
   * `track` without an object for its answer: the flow, and which side sent `d` in `toServer` (the engine's
   * per-packet call: no allocation, and no result object whose shape V8 specialises a caller to)
   */
  trackFlow(d: Decoded, nowUs: number, updateState = true): Flow<T> {
    this.sweep(nowUs);
    // a recent flow (still in the table) is the one the lookup below would find
    let f =
      this.recent0 !== undefined && keyHolds(this.recent0.key, d, this.vlans, this.tunnels)
        ? this.recent0
        : this.recent1 !== undefined && keyHolds(this.recent1.key, d, this.vlans, this.tunnels)
          ? this.recent1
          : undefined;
    let hashed = false;
    let lo = 0;
    let hi = 0;
    if (!f) {
      this.keyOf(d);
      const w = hash64Words(this.hashKey, this.scratchKey, this.hashOut);
      lo = w[0]!;
      hi = w[1]!;
      hashed = true;
      f = this.findKey(lo, hi);
    }
    if (f && this.expired(f, nowUs)) {
      this.remove(f, 'timeout');
      f = undefined;
    }
    // a SYN on a closed session begins a new one on the same ports (a client that reset and tried again,
    // or reused its port after TIME-WAIT): the old flow goes (its data flushed) and a new one starts here.
    // (Until 2026-12-07 the SYN was ignored and the new session's packets joined the closed flow, never
    // established: its stream went uninspected and flow:established rules missed it, an evasion.)
    if (f && f.state === TcpState.closed && d.proto === Proto.TCP && (d.tcpFlags & (SYN | RST)) === SYN) {
      this.remove(f, 'reuse');
      f = undefined;
    }
    if (!f) {
      if (!hashed) {
        this.keyOf(d);
        const w = hash64Words(this.hashKey, this.scratchKey, this.hashOut);
        lo = w[0]!;
        hi = w[1]!;
      }
      const [ca, cp] = receiverIsClient(d) ? [d.dstAddr, d.dstPort] : [d.srcAddr, d.srcPort];
      f = new Flow<T>(this.nextId++, d.proto, this.scratchKey.slice(), lo, hi, new Uint8Array(ca), cp, nowUs);
      this.insert(f, nowUs);
      this.stats.created++;
    }
    if (f !== this.recent0) {
      this.recent1 = this.recent0;
      this.recent0 = f;
    }
    const toServer = f.fromClient(d);
    const dir = toServer ? 0 : 1;
    f.lastUs = Math.max(f.lastUs, nowUs);
    f.seen[dir] = true;
    f.packets[dir]++;
    f.bytes[dir] += d.payload.length;
    if (d.proto === Proto.TCP && !updateState) f.establishedForPacket = f.established;
    else if (d.proto === Proto.TCP) {
      const before = f.established;
      tcpUpdate(f, d, toServer, this.opts);
      f.establishedForPacket =
        f.established &&
        (before || (f.state === TcpState.established && !f.tcp[0].isnSet && !f.tcp[1].isnSet));
    } else {
      f.established = true; // UDP, ICMP, others: a flow counts as established once seen (as before)
      f.establishedForPacket = true;
    }
    this.touchExpiry(f);
    this.toServer = toServer;
    return f;
  }

  private insert(f: Flow<T>, nowUs: number): void {
    const [b1, b2] = this.bucketsOf(f.h1, f.h2);
    // make room: every expired flow goes first (in time order, whatever buckets they are in), when the
    // table is full or the flow's buckets are; then, at capacity, the least recently seen flow
    let free = false;
    for (const b of [b1, b2])
      for (let s = b * slotsPerBucket; s < (b + 1) * slotsPerBucket; s++) if (!this.slots[s]) free = true;
    if (!free || this.stats.flows >= this.flowsMax) this.sweep(nowUs, Number.POSITIVE_INFINITY);
    if (this.stats.flows >= this.flowsMax) this.evictOldest();
    let cur = f;
    for (let kick = 0; kick <= cuckooKicksMax; kick++) {
      const [c1, c2] = this.bucketsOf(cur.h1, cur.h2);
      for (const b of [c1, c2])
        for (let s = b * slotsPerBucket; s < (b + 1) * slotsPerBucket; s++)
          if (!this.slots[s]) {
            this.slots[s] = cur;
            this.slotTag[s] = tagOf(cur.h1);
            this.stats.flows++;
            return;
          }
      if (kick === cuckooKicksMax) break;
      // displace a pseudo-random resident of one of cur's buckets; it moves on to its other bucket
      this.rng = (Math.imul(this.rng, 1664525) + 1013904223) >>> 0;
      const b = this.rng & 1 ? c2 : c1;
      const s = b * slotsPerBucket + ((this.rng >>> 8) % slotsPerBucket);
      const victim = this.slots[s]!;
      this.slots[s] = cur;
      this.slotTag[s] = tagOf(cur.h1);
      cur = victim;
      if (kick === 0) this.stats.kicked++;
    }
    // the walk found no free slot: the flow left homeless is evicted; the count is unchanged (the new flow
    // took a slot, the homeless one lost its). The walk may have displaced the new flow itself: then the
    // least recently seen flow of its buckets (both full) gives up its slot to it instead
    if (cur === f) {
      let s = -1;
      for (const b of [b1, b2])
        for (let t = b * slotsPerBucket; t < (b + 1) * slotsPerBucket; t++)
          if (s < 0 || this.slots[t]!.lastUs < this.slots[s]!.lastUs) s = t;
      cur = this.slots[s]!;
      this.slots[s] = f;
      this.slotTag[s] = tagOf(f.h1);
    }
    this.stats.evicted.capacity++;
    this.gone(cur, 'capacity');
  }

  /**
   * At capacity: evicts the least recently seen flow of the table, the earliest of the expiry lists' heads
   * (until 2026-12-04 the least recently seen of the new flow's candidate slots, which the hash key chose).
   */
  private evictOldest(): void {
    let best: Flow<T> | undefined;
    for (let c = 0; c < expiryClasses; c++) {
      const f = this.expiryHead[c];
      if (f && (!best || f.lastUs < best.lastUs)) best = f;
    }
    if (best) this.remove(best, 'capacity');
  }

  private remove(f: Flow<T>, reason: EvictReason): void {
    const [b1, b2] = this.bucketsOf(f.h1, f.h2);
    for (const b of [b1, b2])
      for (let s = b * slotsPerBucket; s < (b + 1) * slotsPerBucket; s++)
        if (this.slots[s] === f) {
          this.evictSlot(s, reason);
          return;
        }
    this.unlinkExpiry(f); // not in the table (cannot happen): at least off its list, so a sweep moves on
  }

  /**
   * Expires at most `flowsMax` idle flows: each class's least recently seen ones, while they are expired
   * (constant work per call; which flows, and in what order, depends on the packets alone).
   */
  sweep(nowUs: number, flowsMax = sweepFlowsPerPacket): void {
    if (nowUs <= this.sweepAfter) return;
    let n = 0;
    const last = this.expiryHeadLast;
    const timeouts = this.classTimeouts;
    for (let c = 0; c < expiryClasses; c++)
      // `expired` of the head
      while (n < flowsMax && nowUs - last[c]! > timeouts[c]!) {
        this.remove(this.expiryHead[c]!, 'timeout');
        n++;
      }
    // (heads left expired by the bound on flows a packet give a time already past)
    let after = Number.POSITIVE_INFINITY;
    for (let c = 0; c < expiryClasses; c++) after = Math.min(after, last[c]! + timeouts[c]! - 1);
    this.sweepAfter = after;
  }

  /** Evicts every flow (end of input), oldest first, so their remaining data is flushed in order. */
  drain(reason: EvictReason = 'shutdown'): void {
    const live: [number, Flow<T>][] = [];
    this.slots.forEach((f, i) => {
      if (f) live.push([i, f]);
    });
    live.sort((a, b) => a[1].lastUs - b[1].lastUs || a[1].id - b[1].id);
    for (const [i] of live) this.evictSlot(i, reason);
  }

  /** Every live flow (for tests and stats). */
  *flows(): IterableIterator<Flow<T>> {
    for (const f of this.slots) if (f) yield f;
  }
}

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

/** Advances the TCP state of `f` by one packet. */
export function tcpUpdate(f: Flow, d: Decoded, toServer: boolean, opts: FlowOptions): void {
  const fl = d.tcpFlags;
  const me = f.tcp[toServer ? 0 : 1];
  const peer = f.tcp[toServer ? 1 : 0];
  if (fl & ACK) {
    me.lastAck = d.ack;
    me.ackSet = true;
  }
  if (fl & RST) {
    if (f.state !== TcpState.none) f.state = TcpState.closed;
    f.established = false;
    return;
  }
  if (fl & SYN) {
    if (f.state === TcpState.none || f.state === TcpState.synSent || f.state === TcpState.synRecv) {
      me.isn = d.seq;
      me.isnSet = true;
      if (fl & ACK) {
        // SYN/ACK (from the server, or from the client in a split handshake), or picked up midstream
        if (f.state === TcpState.none && !opts.midstream) return;
        if (peer.isnSet || opts.midstream) f.state = TcpState.synRecv;
      } else if (f.state === TcpState.none) f.state = TcpState.synSent;
    }
    return;
  }
  if (f.state === TcpState.synRecv && fl & ACK) {
    f.state = TcpState.established;
    f.established = true;
  } else if (f.state === TcpState.synSent && toServer && fl & ACK && opts.asyncOneside) {
    // only the client's side is visible: its ACK after the SYN completes the handshake we can see
    f.state = TcpState.established;
    f.established = true;
  } else if (f.state === TcpState.none && opts.midstream) {
    f.state = TcpState.established;
    f.established = true;
  }
  if (fl & FIN) {
    me.fin = true;
    if (f.state === TcpState.established) f.state = TcpState.closing;
    if (me.fin && peer.fin) f.state = TcpState.closed;
  }
}
