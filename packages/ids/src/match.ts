// The steps a compiled rule's options become (contents, pcres, byte ops, protocol and header tests), and
// their evaluation on a packet's payload, a stream window or an inspection buffer (`matchSteps`), with the
// header tests a port group can run before any payload step (`headerPass`, `neverPasses`).

import { type Asn1Option, asn1Match } from './asn1.js';
import { type Base64Decode, base64DecodeAt } from './base64.js';
import { type ByteExtract, type ByteJump, type ByteTest, compare, readValue, resolve } from './bytes.js';
import { type DceIface, type DceRequest, dceIfaceMatch, parseDceDatagram } from './dcerpc.js';
import type { Decoded } from './decode.js';
import { find } from './find.js';
import type { Flow } from './flow.js';
import { firstExecGuarded } from './pcre.js';
import type { ContentMatch } from './rules.js';
import { parseSip, type SipMethodTest, sipMethodMatch, sipStatMatch } from './sip.js';
import { type PcreExec, StepBoundedRegExp } from './steps.js';
import { type TlsSession, type TlsTest, tlsTest } from './tls.js';

/**
 * What the steps read of a flow's protocol state (the engine's per-flow data extends it): the TLS session
 * and the handshake states of the delivery under way, and what the delivery or packet under way completed
 * of DCE/RPC requests and SIP messages.
 */
export interface FlowInspection {
  /** SSL/TLS record tracking (when ssl_state / ssl_version rules are loaded), from the first stream data. */
  tls?: TlsSession;
  /** The handshake states of the stream delivery under way (`ssl_state`). */
  tlsNow: number;
  /** The DCE/RPC requests that complete in the stream delivery under way (TCP or SMB). */
  dceNow?: DceRequest[];
  /** The connectionless requests of the UDP packet under way: its own, and the call it completes. */
  dceDatagramNow?: DceRequest[];
  /** Where the SIP messages completed in the stream delivery under way start (from its first new byte). */
  sipNow?: number[];
}

/** A payload step: content or pcre, each relative to the previous match end when asked. */
export type Step =
  | {
      kind: 'content';
      c: ContentMatch & { startswith?: boolean; endswith?: boolean };
      /** The rule's first positive, absolute content: on a stream window its search may start late. */
      first: boolean;
    }
  | {
      kind: 'pcre';
      re: RegExp;
      /** The same expression with the g flag: exec from lastIndex (one instance per step, reused). */
      reG: PcreExec;
      /** reNoFinalNewline's with the g flag: for a text that does not end with LF. */
      reGNoFinalNewline: PcreExec | undefined;
      /**
       * For the first exec from the start of a text: reG and reGNoFinalNewline guarded (`firstExecGuarded`).
       */
      reGFirst: PcreExec | undefined;
      reGFirstNoFinalNewline: PcreExec | undefined;
      /** The first execs' expressions by number, the same for the same expression in any rule (`firstMatches`). */
      firstId: number;
      firstIdNoFinalNewline: number;
      relative: boolean;
      negated: boolean;
    }
  | { kind: 'isdataat'; n: number; nVar?: string; relative: boolean; negated: boolean }
  | { kind: 'asn1'; o: Asn1Option }
  | TlsTest
  | { kind: 'sip_method'; test: SipMethodTest }
  | { kind: 'sip_stat_code'; codes: number[] }
  | DceStep
  | SubBuffer
  | { kind: 'dsize'; test: (n: number) => boolean }
  | { kind: 'flags'; test: (f: number) => boolean }
  | { kind: HeaderFieldKind; test: (n: number) => boolean }
  | ByteTest
  | ByteJump
  | ByteExtract
  | { kind: 'ipopts'; type: number }
  | { kind: 'stream_size'; which: 'server' | 'client' | 'both' | 'either'; test: (n: number) => boolean }
  | { kind: 'bufferlen'; test: (n: number) => boolean };

/**
 * A buffer derived from the one inspected, whose steps (`inner`: every option after the keyword that
 * selects it, up to a buffer switch) run on it from its start: base64_decode + base64_data (the decoded
 * bytes), sip_header and sip_body (the parts of the SIP message where the inspected data starts). Its
 * contents are never fast patterns of the rule (the prefilter sees the buffer it derives from).
 */
/**
 * Most detection steps a rule may have (derived buffers' included): a match goes one call deeper per step
 * (each step tries the next from each of its matches), and a rule of 2,000 contents overflowed the stack
 * on a packet. The community rules have at most 23 payload options.
 */
export const ruleStepsMax = 512;

export function stepCount(steps: Step[]): number {
  let n = steps.length;
  for (const s of steps) if ((s.kind === 'subbuffer' || s.kind === 'dce') && s.inner) n += stepCount(s.inner);
  return n;
}

export interface SubBuffer {
  kind: 'subbuffer';
  source: 'base64' | 'sip_header' | 'sip_body';
  b64?: Base64Decode;
  inner: Step[];
}

/**
 * dce_iface, dce_opnum and dce_stub_data together: a DCE/RPC request in the inspected data whose interface
 * and opnum match; with dce_stub_data, the options after it (`inner`) run on that request's stub, in its
 * byte order for `dce` byte_* options. Each request found is tried.
 */
export interface DceStep {
  kind: 'dce';
  iface?: DceIface;
  opnums?: [number, number][];
  inner?: Step[];
}

/** What the payload steps run over: a packet's payload, or a window of a reassembled stream. */
export interface MatchCtx {
  payload: Uint8Array;
  /**
   * Index where absolute positions (offset, depth, startswith, isdataat, byte_* offsets) count from: 0 for a
   * packet; on a stream window, the start of the newly delivered bytes (Suricata inspects raw stream data
   * from where the previous inspection stopped, so anchors are relative to each new chunk).
   */
  anchor: number;
  /** A match must end after this index of `payload` (-1 for a packet: any match). */
  minEnd: number;
  /** Lowest start for the rule's first content (on a stream window: what can still end past `minEnd`). */
  firstFrom: number;
  /** The packet (undefined on stream data: packet-only steps fail). */
  d: Decoded | undefined;
  latin1: () => string;
  /** Set on success: where the match ended. */
  end: number;
  /** byte_extract variables. */
  vars: Map<string, number>;
  /** The flow (stream_size). */
  flow: Flow | undefined;
  /** In a DCE/RPC stub: the request's byte order (byte_* with `dce`). */
  dceLittle?: boolean;
  /** The SIP message an earlier sip_* option of the rule chose (its start in `payload`). */
  sipAt?: number;
  /** Step evaluations left for this rule evaluation, shared with its derived buffers' contexts. */
  budget: { left: number };
}

/**
 * A context for one rule evaluation: `ctx` reset (no byte_extract variables, no DCE/RPC or SIP choice) when
 * given, else a new one; nothing keeps a context past its evaluation, so an inspection reuses one.
 */
export function matchCtx(
  ctx: MatchCtx | undefined,
  payload: Uint8Array,
  anchor: number,
  minEnd: number,
  firstFrom: number,
  d: Decoded | undefined,
  latin1: () => string,
  flow: Flow | undefined,
  budget: number,
): MatchCtx {
  if (!ctx)
    return {
      payload,
      anchor,
      minEnd,
      firstFrom,
      d,
      latin1,
      end: 0,
      vars: new Map(),
      flow,
      dceLittle: undefined,
      sipAt: undefined,
      budget: { left: budget },
    };
  ctx.payload = payload;
  ctx.anchor = anchor;
  ctx.minEnd = minEnd;
  ctx.firstFrom = firstFrom;
  ctx.d = d;
  ctx.latin1 = latin1;
  ctx.end = 0;
  if (ctx.vars.size > 0) ctx.vars.clear();
  ctx.flow = flow;
  ctx.dceLittle = undefined;
  ctx.sipAt = undefined;
  ctx.budget.left = budget;
  return ctx;
}

/**
 * The first match from the start of a text of each pcre run on it, by expression number: `[index, length]`,
 * or null for none. Per text (its latin1 closure, made once per buffer of an inspection), so rules with the
 * same pcre over one buffer run it once: 237 community rules share 8 pcres (each rule its own content), and
 * one of those takes 8-17 ms an exec over 2.5-4 KiB of word characters (`(\w+)` tried from every start).
 */
const firstMatches = new WeakMap<() => string, Map<number, readonly [number, number] | null>>();

/**
 * Where the engine runs a translated pcre (with its step budget on): `'steps'`, in the step machine, for a
 * backreference (no guard or automaton reaches those); `'switched'`, V8 up to `pcreShortMax` and the
 * machine beyond, for loops that can make V8 polynomial: two that trade a run
 * (`StepBoundedRegExp.ambiguousLoops`), or one a search enters again from each start inside its run
 * (`restartableLoop`: `uid=\d{1,5}\S+\s+gid=` over `uid=0a` repeated) with no first-exec guard for the
 * shape (`firstExecGuarded`, which skips those starts at V8's speed); else `'v8'`.
 */
export function pcreRoute(source: string, flags: string): 'steps' | 'switched' | 'v8' {
  if (StepBoundedRegExp.hasBackreference(source)) return 'steps';
  if (StepBoundedRegExp.ambiguousLoops(source, flags)) return 'switched';
  const restarts =
    StepBoundedRegExp.restartableLoop(source, flags) && firstExecGuarded(source, flags) === undefined;
  return restarts ? 'switched' : 'v8';
}

/** The bytes as latin1 text, made on the first call (for pcre). */
export function latin1Of(bytes: Uint8Array): () => string {
  let text: string | undefined;
  return () => (text ??= Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1'));
}

/** A context for matching a rule's inner steps on a buffer derived from the inspected data. */
function subCtx(sub: Uint8Array, ctx: MatchCtx, dceLittle: boolean | undefined): MatchCtx {
  return {
    payload: sub,
    anchor: 0,
    minEnd: -1,
    firstFrom: 0,
    d: ctx.d,
    latin1: latin1Of(sub),
    end: 0,
    vars: ctx.vars,
    flow: ctx.flow,
    ...(dceLittle !== undefined && { dceLittle }),
    budget: ctx.budget,
  };
}

/**
 * Where the SIP messages of the inspected data start: the one an earlier sip_* option chose; a packet's
 * payload start; on a stream, those whose header section completed in this delivery (`SipStream`).
 */
function sipStarts(ctx: MatchCtx): number[] {
  if (ctx.sipAt !== undefined) return [ctx.sipAt];
  if (ctx.d !== undefined) return [ctx.anchor];
  const now = (ctx.flow?.data as FlowInspection | undefined)?.sipNow;
  return now ? now.map((o) => ctx.anchor + o).filter((at) => at >= 0) : [];
}

/** Matches of one pcre tried per step at most (bounds backtracking on a stream window). */
const pcreTriesMax = 64;

/**
 * What a byte_test, byte_jump or byte_extract reads: where (`at`), how many bytes (`n`) and the value;
 * undefined when a variable it names is unset or the bytes are not in the buffer.
 */
function byteRead(
  s: ByteTest | ByteJump | ByteExtract,
  payload: Uint8Array,
  ctx: MatchCtx,
  prevEnd: number,
): { at: number; n: number; v: number } | undefined {
  const n = resolve(s.bytes, ctx.vars);
  const off = resolve(s.offset, ctx.vars);
  if (n === undefined || off === undefined) return undefined;
  const at = s.relative ? prevEnd + off : off + ctx.anchor;
  const v = readValue(payload, at, s, n, s.dce && ctx.dceLittle !== undefined ? ctx.dceLittle : s.little);
  return v === undefined ? undefined : { at, n, v };
}

/**
 * Evaluates the payload steps with backtracking over earlier content matches (as Snort and Suricata do:
 * a later relative content may need an earlier content to match at a later position).
 */
export function matchSteps(steps: Step[], i: number, ctx: MatchCtx, prevEnd: number): boolean {
  if (--ctx.budget.left < 0) return false;
  if (i === steps.length) {
    ctx.end = prevEnd;
    return prevEnd > ctx.minEnd;
  }
  const s = steps[i]!;
  const { payload, d } = ctx;
  switch (s.kind) {
    case 'content': {
      const c = s.c;
      let { offset, depth, distance, within } = c;
      if (c.vars) {
        // byte_extract variables; one that is not set fails the match
        const v = (name: string | undefined, n: number | undefined) =>
          name === undefined ? n : ctx.vars.get(name);
        offset = v(c.vars.offset, offset);
        depth = v(c.vars.depth, depth);
        distance = v(c.vars.distance, distance);
        within = v(c.vars.within, within);
        for (const name of Object.values(c.vars)) if (name !== undefined && !ctx.vars.has(name)) return false;
      }
      const rel = distance !== undefined || within !== undefined || c.vars?.distance !== undefined;
      // unanchored content searches the whole window (so it may straddle earlier data); offset/depth anchor
      let from = rel
        ? prevEnd + (distance ?? 0)
        : offset === undefined && depth === undefined
          ? 0
          : (offset ?? 0) + ctx.anchor;
      let to = payload.length;
      if (rel && within !== undefined) to = Math.min(to, prevEnd + (distance ?? 0) + within);
      if (!rel && depth !== undefined) to = Math.min(to, (offset ?? 0) + depth + ctx.anchor);
      if (c.startswith) {
        from = Math.max(from, ctx.anchor);
        to = Math.min(to, c.bytes.length + ctx.anchor);
      }
      if (s.first) from = Math.max(from, ctx.firstFrom);
      from = Math.max(0, from);
      if (c.negated) {
        const at = find(payload, c.bytes, from, to, c.nocase);
        return at < 0 && matchSteps(steps, i + 1, ctx, prevEnd);
      }
      for (
        let at = find(payload, c.bytes, from, to, c.nocase);
        at >= 0;
        at = find(payload, c.bytes, at + 1, to, c.nocase)
      ) {
        if (c.endswith && at + c.bytes.length !== payload.length) continue;
        if (matchSteps(steps, i + 1, ctx, at + c.bytes.length)) return true;
      }
      return false;
    }
    case 'pcre': {
      // a relative pcre runs on the buffer from the cursor on (as PCRE is given it in Snort and Suricata), so
      // ^ and \A anchor at the cursor; V8 slices strings without copying
      const from = s.relative ? Math.max(0, Math.min(prevEnd, payload.length)) : 0;
      const text = from > 0 ? ctx.latin1().slice(from) : ctx.latin1();
      const plainEnd = s.reGNoFinalNewline !== undefined && text.charCodeAt(text.length - 1) !== 10;
      const re = plainEnd ? s.reGNoFinalNewline! : s.reG;
      // the first exec from the start may skip the starts a leading loop makes pointless; from the buffer's
      // start, another rule may have run the same expression on it already
      const first = (plainEnd ? s.reGFirstNoFinalNewline : s.reGFirst) ?? re;
      let memo: Map<number, readonly [number, number] | null> | undefined;
      const id = plainEnd ? s.firstIdNoFinalNewline : s.firstId;
      if (from === 0) {
        memo = firstMatches.get(ctx.latin1);
        if (!memo) firstMatches.set(ctx.latin1, (memo = new Map()));
      }
      let hit = memo?.get(id);
      if (hit === undefined) {
        first.lastIndex = 0;
        const m = first.exec(text);
        hit = m ? [m.index, m[0].length] : null;
        memo?.set(id, hit);
      }
      if (s.negated) return hit === null && matchSteps(steps, i + 1, ctx, prevEnd);
      if (hit === null) return false;
      let [at, len] = hit;
      re.lastIndex = at + len;
      for (let n = 1; ; n++) {
        if (matchSteps(steps, i + 1, ctx, from + at + len)) return true;
        if (n === pcreTriesMax) return false;
        if (len === 0) re.lastIndex++;
        const m = re.exec(text);
        if (!m) return false;
        at = m.index;
        len = m[0].length;
      }
    }
    case 'isdataat': {
      // absolute: byte n exists; relative: n more bytes exist after the cursor (Suricata's reading); n may
      // be a byte_extract variable (unset: the option fails)
      const n = s.nVar === undefined ? s.n : ctx.vars.get(s.nVar);
      if (n === undefined) return false;
      const ok = s.relative ? prevEnd + n <= payload.length : n + ctx.anchor < payload.length;
      return ok !== s.negated && matchSteps(steps, i + 1, ctx, prevEnd);
    }
    case 'asn1': {
      // decoding starts at the absolute offset (from the anchor), the cursor plus the relative offset, or
      // the buffer's start; it does not move the cursor
      const from =
        s.o.absoluteOffset !== undefined
          ? ctx.anchor + s.o.absoluteOffset
          : s.o.relativeOffset !== undefined
            ? prevEnd + s.o.relativeOffset
            : ctx.anchor;
      return asn1Match(payload, from, s.o) && matchSteps(steps, i + 1, ctx, prevEnd);
    }
    case 'ssl_state':
    case 'ssl_version': {
      // the SSL/TLS state of the stream delivery under way (stream rules only: no packet has it)
      const fd = ctx.flow?.data as FlowInspection | undefined;
      if (d !== undefined || !fd?.tls) return false;
      const have = s.kind === 'ssl_state' ? fd.tlsNow : fd.tls.versions;
      return tlsTest(s, have) && matchSteps(steps, i + 1, ctx, prevEnd);
    }
    case 'sip_method':
    case 'sip_stat_code':
      // each SIP message of the inspected data; the other sip_* options of the rule then see the same one
      for (const at of sipStarts(ctx)) {
        const m = parseSip(payload, at);
        if (!(s.kind === 'sip_method' ? sipMethodMatch(s.test, m) : sipStatMatch(s.codes, m))) continue;
        const saved = ctx.sipAt;
        ctx.sipAt = at;
        if (matchSteps(steps, i + 1, ctx, prevEnd)) return true;
        ctx.sipAt = saved;
      }
      return false;
    case 'dce': {
      // the requests in this datagram, or those that started in this stream delivery
      const fd = ctx.flow?.data as FlowInspection | undefined;
      let reqs: DceRequest[];
      if (d !== undefined) {
        // this packet's (the call its fragment completes included), or parsed here when not followed
        const r = d.proto === 17 && !fd?.dceDatagramNow ? parseDceDatagram(payload) : undefined;
        reqs = fd?.dceDatagramNow ?? (r ? [r] : []);
      } else reqs = fd?.dceNow ?? [];
      for (const r of reqs) {
        if (s.iface && !dceIfaceMatch(s.iface, r)) continue;
        if (s.opnums && !s.opnums.some(([lo, hi]) => r.opnum >= lo && r.opnum <= hi)) continue;
        // a stream match must end in the new bytes: where the request's stub starts counts
        const off = d !== undefined ? 0 : ctx.anchor;
        const end = Math.max(prevEnd, off + r.stubStart);
        if (!s.inner) {
          if (matchSteps(steps, i + 1, ctx, end)) return true;
          continue;
        }
        // a call reassembled from its fragments: its whole stub
        const stub = r.stub ?? payload.subarray(off + r.stubStart, off + r.stubEnd);
        const inner = subCtx(stub, ctx, r.little);
        if (matchSteps(s.inner, 0, inner, 0) && matchSteps(steps, i + 1, ctx, end)) return true;
      }
      return false;
    }
    case 'subbuffer': {
      // the derived buffers to try: the decoded base64, or each SIP message's header or body
      const subs: { sub: Uint8Array; end: number; sipAt?: number }[] = [];
      if (s.source === 'base64') {
        const b = s.b64!;
        const r = base64DecodeAt(payload, (b.relative ? prevEnd : ctx.anchor) + b.offset, b.bytes);
        // a stream match must end in the new bytes: where the encoded data ended counts
        if (r && r.data.length > 0) subs.push({ sub: r.data, end: r.end });
      } else
        for (const at of sipStarts(ctx)) {
          const m = parseSip(payload, at);
          if (!m) continue;
          const sub =
            s.source === 'sip_header'
              ? payload.subarray(m.headerStart, m.headerEnd)
              : payload.subarray(m.bodyStart, m.bodyEnd);
          // a stream match must end in the new bytes: the header section completed in them
          subs.push({ sub, end: Math.max(prevEnd, m.bodyStart), sipAt: at });
        }
      for (const { sub, end, sipAt } of subs) {
        const inner = subCtx(sub, ctx, ctx.dceLittle);
        if (!matchSteps(s.inner, 0, inner, 0)) continue;
        const saved = ctx.sipAt;
        if (sipAt !== undefined) ctx.sipAt = sipAt;
        if (matchSteps(steps, i + 1, ctx, end)) return true;
        ctx.sipAt = saved;
      }
      return false;
    }
    case 'byte_test': {
      const want = resolve(s.value, ctx.vars);
      const r = byteRead(s, payload, ctx, prevEnd);
      return (
        want !== undefined &&
        r !== undefined &&
        compare(s, r.v, want) &&
        matchSteps(steps, i + 1, ctx, prevEnd)
      );
    }
    case 'byte_jump': {
      const r = byteRead(s, payload, ctx, prevEnd);
      if (r === undefined) return false;
      let v = r.v * s.multiplier;
      if (s.align) v = Math.ceil(v / 4) * 4;
      let pos = s.fromBeginning ? v + ctx.anchor : s.fromEnd ? payload.length + v : r.at + r.n + v;
      pos += s.postOffset;
      // Suricata: a jump before the buffer start stops at the start; past the end fails
      pos = Math.max(0, pos);
      return pos <= payload.length && matchSteps(steps, i + 1, ctx, pos);
    }
    case 'byte_extract': {
      const r = byteRead(s, payload, ctx, prevEnd);
      if (r === undefined) return false;
      let v = r.v * s.multiplier;
      if (s.align > 1) v = Math.ceil(v / s.align) * s.align;
      ctx.vars.set(s.name, v);
      return matchSteps(steps, i + 1, ctx, r.at + r.n);
    }
    case 'stream_size': {
      // bytes each side has sent, as sequence numbers count them (the SYN's one included once seen)
      const f = ctx.flow;
      if (f?.proto !== 6) return false;
      const sent = (dir: 0 | 1) => f.bytes[dir] + (f.tcp[dir].isnSet ? 1 : 0);
      const c = s.test(sent(0));
      const sv = s.test(sent(1));
      const ok =
        s.which === 'server' ? sv : s.which === 'client' ? c : s.which === 'both' ? c && sv : c || sv;
      return ok && matchSteps(steps, i + 1, ctx, prevEnd);
    }
    case 'dsize':
    case 'bufferlen':
      return s.test(payload.length) && matchSteps(steps, i + 1, ctx, prevEnd);
    default:
      // the other header tests (flags, ipopts, the header fields)
      return headerStepPasses(s, d, payload.length) && matchSteps(steps, i + 1, ctx, prevEnd);
  }
}

/** Steps that test one numeric header field of the packet. */
type HeaderFieldKind =
  | 'itype'
  | 'icode'
  | 'icmp_id'
  | 'icmp_seq'
  | 'ttl'
  | 'id'
  | 'fragbits'
  | 'ip_proto'
  | 'seq'
  | 'ack';

/** The header field a step tests, or undefined when the packet has none (ICMP fields, IPv4's id, TCP's seq). */
function headerField(kind: HeaderFieldKind, d: Decoded): number | undefined {
  const icmp = d.proto === 1 || d.proto === 58;
  switch (kind) {
    case 'itype':
      return icmp ? d.icmpType : undefined;
    case 'icode':
      return icmp ? d.icmpCode : undefined;
    case 'icmp_id':
      return icmp ? d.icmpId : undefined;
    case 'icmp_seq':
      return icmp ? d.icmpSeq : undefined;
    case 'ttl':
      return d.ttl;
    case 'id':
      return d.ipVersion === 4 ? d.ipId : undefined;
    case 'fragbits':
      return d.ipVersion === 4 ? d.ipFlags : undefined;
    case 'ip_proto':
      return d.proto;
    case 'seq':
      return d.proto === 6 ? d.seq : undefined;
    case 'ack':
      return d.proto === 6 ? d.ack : undefined;
  }
}

/** A step that tests the packet's header or size (`packetOnlySteps`). */
type HeaderStep = Extract<Step, { kind: 'dsize' | 'flags' | 'ipopts' | HeaderFieldKind }>;

/** Whether header step `s` passes on packet `d` whose payload is `payloadBytes` long. */
function headerStepPasses(s: HeaderStep, d: Decoded | undefined, payloadBytes: number): boolean {
  switch (s.kind) {
    case 'dsize':
      return s.test(payloadBytes);
    case 'flags':
      return d !== undefined && d.proto === 6 && s.test(d.tcpFlags);
    case 'ipopts':
      return d !== undefined && (s.type < 0 ? d.ipOptions.length > 0 : d.ipOptions.includes(s.type));
    default: {
      const v = d && headerField(s.kind, d);
      return v !== undefined && s.test(v);
    }
  }
}

/**
 * A packet rule's header-field tests (`Compiled.header`) on `d`, without a match context: what
 * `matchSteps(header, 0, ctx, 0)` says on the packet's payload; undefined for a step that is no header test.
 */
export function headerPass(steps: Step[], d: Decoded): boolean | undefined {
  for (const s of steps) {
    if (!packetOnlySteps.has(s.kind)) return undefined;
    if (!headerStepPasses(s as HeaderStep, d, d.payload.length)) return false;
  }
  return true;
}

/**
 * Whether header-field tests `steps` (`Compiled.header`) fail on every packet of IP protocol `proto`, as
 * `headerPass` decides them: a failing `ip_proto`, an ICMP field off ICMP, TCP flags, seq or ack off TCP;
 * with a TCP flags byte `flags` (0-255), also a `flags` test failing on it.
 */
export function neverPasses(steps: Step[], proto: number, flags = -1): boolean {
  const icmp = proto === 1 || proto === 58;
  for (const s of steps) {
    switch (s.kind) {
      case 'ip_proto':
        if (!s.test(proto)) return true;
        break;
      case 'itype':
      case 'icode':
      case 'icmp_id':
      case 'icmp_seq':
        if (!icmp) return true;
        break;
      case 'flags':
        if (proto !== 6 || (flags >= 0 && !s.test(flags))) return true;
        break;
      case 'seq':
      case 'ack':
        if (proto !== 6) return true;
        break;
    }
  }
  return false;
}

/** The leading steps of a packet rule that test header fields only (stage 1's header filter), if any. */
export function headerSteps(steps: Step[]): { header: Step[] } | undefined {
  let n = 0;
  while (n < steps.length && packetOnlySteps.has(steps[n]!.kind)) n++;
  return n > 0 ? { header: steps.slice(0, n) } : undefined;
}

/**
 * Marks the first positive absolute content and returns how far a match can reach from its start: finite
 * only when every later positive match is a content tied to the previous one by `within`.
 */
export function firstContentSpan(steps: Step[]): number {
  const i = steps.findIndex((s) => s.kind === 'content' && !s.c.negated);
  const first = steps[i];
  if (
    first?.kind !== 'content' ||
    first.c.distance !== undefined ||
    first.c.within !== undefined ||
    first.c.vars
  )
    return Number.POSITIVE_INFINITY;
  first.first = true;
  let span = first.c.bytes.length;
  for (const s of steps.slice(i + 1)) {
    if (
      (s.kind === 'pcre' && !s.negated) ||
      s.kind === 'byte_jump' ||
      s.kind === 'byte_extract' ||
      s.kind === 'subbuffer' ||
      s.kind === 'dce'
    )
      return Number.POSITIVE_INFINITY;
    if (s.kind !== 'content' || s.c.negated) continue;
    if (s.c.within === undefined || s.c.vars) return Number.POSITIVE_INFINITY;
    span += Math.max(0, s.c.distance ?? 0) + s.c.within;
  }
  return span;
}

/** Step kinds that describe one packet (Suricata: such rules never inspect the reassembled stream). */
export const packetOnlySteps = new Set([
  'dsize',
  'flags',
  'itype',
  'icode',
  'ttl',
  'id',
  'seq',
  'ack',
  'fragbits',
  'ip_proto',
  'icmp_id',
  'icmp_seq',
  'ipopts',
]);
