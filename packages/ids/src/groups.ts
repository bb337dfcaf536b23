/**
 * Port groups and the multi-string prefilter in front of the full matcher (the first stages of the Pigasus
 * pipeline): the rules a flow direction consults by its protocol and ports (stage 1), the automata over
 * their fast patterns whose scan of a packet or a stream window marks the patterns present (stage 2), the
 * all-strings check of a rule's other contents (stage 3), and the candidate rules an inspection visits.
 * The engine (`detect.ts`) holds one `PortGroups` and runs its rule loops over the candidates.
 */

import type { Compiled } from './compile.js';
import type { EngineOptions, EngineStats } from './engine-api.js';
import { neverPasses, type Step } from './match.js';
import { type PortTest, portIntervals } from './netspec.js';
import { IdList, MultiMatcher } from './prefilter.js';

/** `RuleGroup.packetAlways`: the rules a packet inspection visits without a mark, and a stage marker. */
export interface PacketAlways {
  list: Int32Array;
  /**
   * The first rule stage 1 admits when its header tests fail on every such packet (else -1): not visited,
   * but an inspection that reaches it counts as past the prefilter stages, as a rule without a fast
   * pattern would make it (the stage counters of `EngineStats`).
   */
  marker: number;
}

/** The rules one flow direction consults, and the prefilter over their fast patterns. */
export interface RuleGroup {
  rules: Compiled[];
  /** Per rule: the id of its fast pattern in `matcher` (-1: the rule is always evaluated). */
  fp: Int32Array;
  matcher: MultiMatcher | undefined;
  /** A port group whose own automaton is not built yet (`PortGroups.groupScanner`): `matcher` is the shared one. */
  ownPending: boolean;
  /** Bytes the group's scans have read (counted until it has its own automaton). */
  scanned: number;
  /** Per pattern id: whether it occurs in the bytes scanned last. */
  hit: Uint8Array;
  /** The rules without a fast pattern (indices into `rules`, ascending): candidates of every inspection. */
  always: Int32Array;
  /** `always` without the packet rules: the candidates of every stream inspection besides those marked. */
  streamAlways: Int32Array;
  /**
   * Per pattern id: the rules keyed on it, `byFp[byFpStart[id], byFpStart[id + 1])` (ascending), so an
   * inspection visits the rules whose pattern the scan marked and those without one, not every rule.
   */
  byFpStart: Int32Array;
  byFp: Int32Array;
  /**
   * Per kind of inspection (`consultKey`), made on first use: for each prefix `rules[0, i)`, how many rules
   * stage 1 admits (`[2i]`) and how many of those have a fast pattern and pass the DCE/FTP tests (`[2i+1]`),
   * so the stage counters (`rulesPrefiltered`, `stagePortGroupOut`) come out as if every rule were visited.
   */
  consulted: Map<number, Int32Array>;
  /**
   * Per kind of packet inspection (`consultKey`) and, for TCP, the packet's flags byte, made on first use:
   * the rules of `always` it visits (`packetAlways`).
   */
  packetAlways: Map<number, PacketAlways>;
  /**
   * The entries of `consulted` and `packetAlways` read last and their keys (NaN: none): a group's next
   * inspection is mostly of the same kind (a flow's packets in a row), found without a lookup.
   */
  consultedKey: number;
  consultedLast: Int32Array | undefined;
  alwaysKey: number;
  alwaysLast: PacketAlways | undefined;
  /**
   * Per kind of packet scan (`ScanKind`): the group's own automaton over its rules of that kind (undefined:
   * not made yet; null: none made, the kind's shared one, `PortGroups.kindMatchers`, serves; false: none of
   * them has a pattern, nothing to scan), and the bytes its scans of the kind have read.
   */
  kinds: (MultiMatcher | false | null | undefined)[];
  kindScanned: number[];
  /** The engine's run (`PortGroups.reset`) the group was last met in, 0: none (counted once per run). */
  runSeen: number;
}

/**
 * The kinds of packet scan that consult fewer rules than a group holds, each with an automaton of the
 * patterns of those rules only: TCP packets whose data went into a stream (only packet-only rules read
 * them), TCP packets of a flow not established (no rule that needs an established flow can match them:
 * midstream and handshake-less flows), and UDP packets.
 */
export const ScanKind = { tcpInStream: 0, tcpUnestablished: 1, udp: 2 } as const;
export type ScanKind = (typeof ScanKind)[keyof typeof ScanKind];

/** Per `ScanKind`: the rules such a packet consults. */
const kindAdmits: ((c: Compiled) => boolean)[] = [
  (c) => (c.proto === 6 || c.proto === 'ip') && c.mode === 'packet',
  (c) => (c.proto === 6 || c.proto === 'ip') && c.mode !== 'stream' && !needsEstablished(c),
  (c) => c.proto === 17 || c.proto === 'ip',
];

/** Rules with the same protocol, port fields and direction (indices into the inspection order). */
interface PortClass {
  proto: number | 'ip';
  sp: PortTest;
  dp: PortTest;
  both: boolean;
  rules: number[];
}

/** Port groups (distinct rule groups) built at most by default; past it a flow consults every rule. */
export const portGroupsMax = 1024;

/** Remembered (protocol, port region, port region) -> port group answers at most (`PortGroups.groupOf`). */
const portGroupMemoMax = 65_536;

/**
 * Lists of rules without a fast pattern made per kind of packet inspection and TCP flags byte, in every
 * port group together (`PortGroups.packetAlways`): 32 kinds x 256 flags bytes in each of up to 1,024 groups
 * would be 8 million lists; past this bound a TCP packet gets its kind's list whatever its flags.
 */
const packetAlwaysListsMax = 1 << 16;

/** Automata of a `ScanKind` kept for other groups with the same patterns (`PortGroups.kindShared`). */
const kindSharedMax = 1024;

/**
 * A port group's packet scans of a `ScanKind` use an automaton of its own once they have read this many
 * bytes (`kindScanner`): sooner than a group's own automaton of every rule, as these are a few hundred
 * states, built in 0.1-0.3 ms, and shared by groups with the same patterns.
 */
const kindOwnAfterBytes = 4 * 1024;

/** A port group scans with an automaton of its own once its scans have read this many bytes (`groupScanner`). */
const groupOwnAfterBytes = 64 * 1024;

/**
 * The port groups' own automata hold at most this many states together (each state's dense row 512 bytes:
 * 32 MiB at most, when traffic crafted for it has made many groups busy; room for about 30 groups of
 * 2,000 states, where ndpi-mix-a's 7 busy groups take 12,003); later groups scan with the shared automaton.
 */
const groupStatesMax = 1 << 16;

/** `DirStream.scan`: the arrays grow (doubling) to the patterns found, at most one entry per pattern. */
export interface WindowScan {
  /** The automaton `state` is a state of (a port group's changes once: `PortGroups.groupScanner`). */
  matcher: MultiMatcher;
  state: number;
  end: number;
  ids: Int32Array;
  ends: Float64Array;
  n: number;
}

/** What a port group lookup reads and keeps on a flow (the engine's flow data extends it). */
export interface GroupedFlow {
  /** The endpoints' ports: [client, server]. */
  ports: [number, number];
  /** Each direction's port group, found on first use. */
  groups?: [RuleGroup | undefined, RuleGroup | undefined];
}

/** A stream direction's window as the prefilter scans it (the engine's stream direction extends it). */
export interface ScannedWindow {
  /** Inspected bytes: window[0, len) is stream offsets [base, base + len). */
  window: Uint8Array;
  len: number;
  base: number;
  /**
   * The prefilter across deliveries: the automaton's state at stream offset `end` (where the last scan
   * stopped), and each pattern earlier scans found with the end of the latest scanned bytes it was found
   * in (`ids[k]`, `ends[k]` for k < n; each id once), so a delivery scans only its new bytes and still
   * knows what the rest of the window holds.
   */
  scan?: WindowScan;
}

/** The port groups of one engine's packet and stream rules, and their prefilter automata. */
export class PortGroups {
  /** Every packet and stream rule, in inspection order, with the prefilter over all their fast patterns. */
  readonly allRules: RuleGroup;
  /**
   * Per kind of packet scan (`ScanKind`): an automaton over the patterns (ids of `allRules.matcher`) of the
   * rules such a packet consults, of every port group (undefined: no such rule has a pattern).
   */
  private readonly kindMatchers: (MultiMatcher | undefined)[];
  private portClasses: PortClass[] = [];
  /**
   * Port groups built so far (at most `portGroupsMax`), by a 32-bit hash of the classes they unite; each
   * entry keeps its class list, compared on lookup (so a hash collision only costs a comparison).
   */
  private readonly portGroups = new Map<number, { classes: Int32Array; g: RuleGroup }[]>();
  /** The classes admitting the flow direction under way (`groupOf`; its first `n` entries). */
  private readonly portHit: Int32Array;
  /** Per port, its region (`portRegions` of them): ports no rule's port test tells apart share one. */
  private readonly portRegion = new Uint16Array(0x10000);
  private portRegions = 1;
  /**
   * Port groups by protocol and the regions of the flow direction's source and destination ports (at most
   * `portGroupMemoMax`): a new flow finds its group without testing every class (a refusal is not kept).
   */
  private readonly portGroupMemo = new Map<number, RuleGroup>();
  /** The bits of the class-list hash that key `portGroups` (all of them; a test narrows it to collide). */
  private readonly portGroupHashMask: number = 0xffffffff;
  /** The hit array scanned last and the ids set in it, to clear them before the next scan. */
  private lastHit: Uint8Array = new Uint8Array(0);
  private readonly hits = new IdList(0);
  /** Stages an inspection passed, each counted once (`stringsPass`); reset per inspection. */
  private stagePrefilterSeen = false;
  private stageAllStringsSeen = false;
  /** The patterns of `allRules.matcher` by id. */
  private patternList: Uint8Array[] = [];
  /** The candidates of the inspection under way (`candidates`). */
  readonly cand: Int32Array;

  /**
   * `ordered`: the packet and stream rules in inspection order, their fast patterns set (`fastContent`);
   * `vars`: the rule variables (for the port specs); `stats`: the engine's, whose group and stage
   * counters the groups count.
   */
  constructor(
    private readonly ordered: Compiled[],
    private readonly vars: Record<string, string>,
    private readonly opts: Pick<EngineOptions, 'prefilter' | 'allStrings' | 'portGroups' | 'portGroupsMax'>,
    private readonly stats: EngineStats,
  ) {
    this.allRules = this.buildGroup(ordered);
    // smaller automata for the packets whose payload few of those patterns concern (`ScanKind`)
    this.kindMatchers = kindAdmits.map((admit) => this.subMatcher(admit));
    // rules by protocol, port fields and direction: a port group is the union of the classes that admit a
    // packet's ports, found with one test per class instead of one per rule
    const classes = new Map<string, PortClass>();
    ordered.forEach((c, i) => {
      const key = `${c.proto} ${c.rule.srcPorts} ${c.rule.direction} ${c.rule.dstPorts}`;
      let k = classes.get(key);
      if (!k) {
        k = { proto: c.proto, sp: c.sp, dp: c.dp, both: c.rule.direction === '<>', rules: [] };
        classes.set(key, k);
      }
      k.rules.push(i);
    });
    this.portClasses = [...classes.values()];
    // ports numbered by region: two ports in one region get the same answer from every class's port tests,
    // so a flow direction's port group is a function of its protocol and its two ports' regions
    const tests = new Map<string, PortTest>();
    for (const c of ordered) {
      tests.set(c.rule.srcPorts, c.sp);
      tests.set(c.rule.dstPorts, c.dp);
    }
    // where a test's answer may change: each interval's start and the port after its end
    const edges = new Set<number>([0]);
    for (const spec of tests.keys()) {
      const iv = portIntervals(spec, this.vars, 0);
      for (let i = 0; i < iv.length; i += 2) edges.add(iv[i]!).add(iv[i + 1]! + 1);
    }
    const starts = [...edges].filter((e) => e >= 0 && e <= 0xffff).sort((a, b) => a - b);
    // the intervals between edges, partitioned by every test's answers: each test splits the regions so
    // far in two (numbered as they first occur), one pass over the intervals per test
    const region = new Int32Array(starts.length);
    let regions = 1;
    const renumber = new Int32Array(2 * starts.length);
    for (const t of tests.values()) {
      renumber.fill(-1, 0, 2 * regions);
      let next = 0;
      for (let k = 0; k < starts.length; k++) {
        const key = 2 * region[k]! + (t(starts[k]!) ? 1 : 0);
        if (renumber[key]! < 0) renumber[key] = next++;
        region[k] = renumber[key]!;
      }
      regions = next;
    }
    for (let k = 0; k < starts.length; k++)
      this.portRegion.fill(region[k]!, starts[k]!, starts[k + 1] ?? 0x10000);
    this.portRegions = regions;
    // the scratch arrays sized for good, at the build (see the engine's constructor): a group's rules are
    // some of `ordered`
    this.portHit = new Int32Array(this.portClasses.length);
    this.cand = new Int32Array(ordered.length);
  }

  /**
   * Every packet and stream rule (in inspection order) and the multi-string prefilter over their contents.
   * Port groups share its automaton: a scan marks every pattern present and a group consults only its own
   * rules' marks (one automaton, like Pigasus' one string matcher before its port filter). A rule goes on
   * if its fast pattern is marked (stage 2) and then only if each of its other positive contents is too
   * (stage 3, Pigasus' check that all of a rule's strings are present; `allStrings`): one scan serves both.
   */
  private buildGroup(rules: Compiled[]): RuleGroup {
    const patterns = new PatternSet();
    const fp = new Int32Array(rules.length).fill(-1);
    if (this.opts.prefilter !== false)
      rules.forEach((c, i) => {
        if (!c.fast) return;
        fp[i] = patterns.id(c.fast);
        if (!this.opts.allStrings) return;
        // stage 3: the rule's other positive contents, marked by the same scan
        const rest = new Set<number>();
        for (const st of c.steps)
          if (st.kind === 'content' && !st.c.negated && st.c.bytes.length > 0 && st.c.bytes !== c.fast)
            rest.add(patterns.id(st.c.bytes));
        rest.delete(fp[i]!);
        if (rest.size > 0) c.rest = Int32Array.from(rest);
      });
    this.patternList = patterns.list;
    return ruleGroup(
      rules,
      fp,
      patterns.list.length > 0 ? new MultiMatcher(patterns.list) : undefined,
      new Uint8Array(patterns.list.length),
    );
  }

  /**
   * An automaton over the patterns of the rules `admit` takes (their fast patterns, and with `allStrings`
   * their other contents), reporting them by their ids in `allRules.matcher`; undefined without a prefilter.
   */
  private subMatcher(admit: (c: Compiled) => boolean): MultiMatcher | undefined {
    const all = this.allRules;
    return all.matcher ? this.patternMatcher(all.rules, all.fp, admit) : undefined;
  }

  /**
   * An automaton over the patterns of those of `rules` that `admit` takes: their fast patterns (`fp`, ids
   * in `allRules.matcher`, by which it reports them) and, with `allStrings`, their other contents.
   */
  private patternMatcher(
    rules: Compiled[],
    fp: Int32Array,
    admit: (c: Compiled) => boolean = () => true,
  ): MultiMatcher {
    return this.idsMatcher(patternIds(rules, fp, admit));
  }

  /** An automaton over the patterns `list` (ids of `allRules.matcher`, ascending), reported by those ids. */
  private idsMatcher(list: Int32Array): MultiMatcher {
    return new MultiMatcher(
      Array.from(list, (id) => this.patternList[id]!),
      list,
    );
  }

  /**
   * The automaton a port group's scan of `bytes` bytes uses: the shared one of every pattern (the same
   * marks for the group's rules) until the group's scans have read `groupOwnAfterBytes`, then its own
   * while the groups' own automata hold fewer than `groupStatesMax` states together. A group holds a
   * fraction of the rules (150-260 of the 1,600 with patterns on ndpi-mix-a), so its table is a fraction of
   * the shared one (13,552 states, 6.9 MB) and a scan's rows stay in the caches; only the groups most
   * traffic goes through pay for building one (7 of 60 on ndpi-mix-a; the packets of a `ScanKind` use
   * `kindScanner`).
   */
  groupScanner(g: RuleGroup, bytes: number): MultiMatcher | undefined {
    if (g.ownPending && (g.scanned += bytes) >= this.groupOwnAfterBytes) {
      g.ownPending = false;
      if (this.groupStates < groupStatesMax) {
        const m = this.patternMatcher(g.rules, g.fp);
        this.groupStates += m.states;
        g.matcher = m;
      }
    }
    return g.matcher;
  }

  /**
   * The automaton a packet scan of kind `kind` (`ScanKind`) of `bytes` bytes in group `g` uses: the one of
   * every group's rules of that kind (`kindMatchers`) until the group's scans of the kind have read
   * `kindOwnAfterBytes`, then one of its own rules of that kind while the groups' own automata hold fewer
   * than `groupStatesMax` states together (the same marks for its rules), or none when none of them has a
   * pattern (the scan is skipped). A group's share of the kind's rules is smaller still than of all its
   * rules: on ndpi-mix-a 85% of UDP payload bytes went through 365 states of their group's instead of 1,157.
   */
  kindScanner(g: RuleGroup, kind: ScanKind, bytes: number): MultiMatcher | undefined {
    const own = g.kinds[kind];
    if (own) return own;
    if (own === false) return undefined;
    if (own === null || g === this.allRules || (g.kindScanned[kind]! += bytes) < this.kindOwnAfterBytes)
      return this.kindMatchers[kind];
    let m: MultiMatcher | false | null = null;
    if (this.groupStates < groupStatesMax && this.kindMatchers[kind]) {
      const ids = patternIds(g.rules, g.fp, kindAdmits[kind]!);
      // groups with the same rules of a kind (those of any port) share one automaton
      const key = ids.join(',');
      m = ids.length > 0 && (this.kindShared.get(key) ?? null);
      if (m === null) {
        m = this.idsMatcher(ids);
        this.groupStates += m.states;
        if (this.kindShared.size < kindSharedMax) this.kindShared.set(key, m);
      }
    }
    g.kinds[kind] = m;
    return m === null ? this.kindMatchers[kind] : m || undefined;
  }

  /** The groups' own automata of a `ScanKind`, by their patterns' ids (at most `kindSharedMax`). */
  private readonly kindShared = new Map<string, MultiMatcher>();
  /** States of the port groups' own automata (`groupScanner`, `kindScanner`). */
  private groupStates = 0;
  /** `groupOwnAfterBytes` (a test sets another). */
  private readonly groupOwnAfterBytes = groupOwnAfterBytes;
  /** `kindOwnAfterBytes` (a test sets another). */
  private readonly kindOwnAfterBytes = kindOwnAfterBytes;

  /**
   * The rules a flow direction consults (Snort's port groups, one of Pigasus' filter stages): those whose
   * protocol and port fields admit its protocol and ports, each checked against the prefilter's mark of its
   * own pattern; cached on the flow. With `portGroups: false`, or past `portGroupsMax` groups, every rule.
   */
  groupOf(fd: GroupedFlow, dir: number, proto: number): RuleGroup {
    // (the flow's, in a function small enough to be inlined; the search in one of its own)
    return fd.groups?.[dir] ?? this.findGroup(fd, dir, proto);
  }

  /** `groupOf` for a flow direction without its group yet: found or made, and kept on the flow. */
  private findGroup(fd: GroupedFlow, dir: number, proto: number): RuleGroup {
    let g = this.allRules;
    if (this.opts.portGroups !== false) {
      const sp = fd.ports[dir]!;
      const dp = fd.ports[1 - dir]!;
      const regions = this.portRegions;
      const memoKey =
        (proto * regions + this.portRegion[sp & 0xffff]!) * regions + this.portRegion[dp & 0xffff]!;
      const memo = this.portGroupMemo.get(memoKey);
      if (memo && this.useGroup(memo)) {
        fd.groups ??= [undefined, undefined];
        fd.groups[dir] = memo;
        return memo;
      }
      // the classes that admit the flow direction, into a scratch list, and their hash (FNV-1a over the
      // indices): no list or text key per flow
      const classes = this.portClasses;
      const hit = this.portHit;
      let n = 0;
      let h = 0x811c9dc5;
      for (let i = 0; i < classes.length; i++) {
        const k = classes[i]!;
        if (k.proto !== 'ip' && k.proto !== proto) continue;
        if ((k.sp(sp) && k.dp(dp)) || (k.both && k.sp(dp) && k.dp(sp))) {
          hit[n++] = i;
          h = Math.imul(h ^ i, 0x01000193);
        }
      }
      const key = (Math.imul(h ^ n, 0x01000193) & this.portGroupHashMask) >>> 0;
      const same = this.portGroups.get(key);
      let found: RuleGroup | undefined;
      if (same)
        for (const e of same)
          if (sameInts(e.classes, hit, n)) {
            found = e.g;
            break;
          }
      if (found && this.useGroup(found)) g = found;
      else if (!found && this.stats.portGroups < this.groupsMax) {
        // the group's rules, each keyed on its pattern in the one automaton of every fast pattern
        // the classes' rules in inspection order: marked, then read out in one pass (no sort)
        const mark = new Uint8Array(this.ordered.length);
        let count = 0;
        for (let k = 0; k < n; k++) {
          const members = classes[hit[k]!]!.rules;
          for (let j = 0; j < members.length; j++) mark[members[j]!] = 1;
          count += members.length;
        }
        const rules: Compiled[] = new Array(count);
        const fp = new Int32Array(count);
        const allFp = this.allRules.fp;
        let m = 0;
        for (let i = 0; i < mark.length; i++)
          if (mark[i] === 1) {
            rules[m] = this.ordered[i]!;
            fp[m++] = allFp[i]!;
          }
        g = ruleGroup(rules, fp, this.allRules.matcher, this.allRules.hit);
        g.ownPending = true;
        const entry = { classes: hit.slice(0, n), g };
        if (same) same.push(entry);
        else this.portGroups.set(key, [entry]);
        this.held++;
        this.useGroup(g);
      } else this.stats.portGroupsRefused++;
      if (g !== this.allRules && this.portGroupMemo.size < portGroupMemoMax)
        this.portGroupMemo.set(memoKey, g);
    }
    fd.groups ??= [undefined, undefined];
    fd.groups[dir] = g;
    return g;
  }

  /** `portGroupsMax`, or the engine's option. */
  private get groupsMax(): number {
    return this.opts.portGroupsMax ?? portGroupsMax;
  }
  /** Port groups held (made in this run or the runs before it since `reset` last dropped them). */
  private held = 0;
  /** The run under way (`reset` starts the next): a group counts in `stats.portGroups` once per run. */
  private epoch = 1;

  /**
   * A group made before, first met in this run: counted as a new engine would count it when making it, and
   * refused past `portGroupsMax` groups in the run as a new engine would refuse to make it.
   */
  private useGroup(g: RuleGroup): boolean {
    if (g.runSeen === this.epoch) return true;
    if (this.stats.portGroups >= this.groupsMax) return false;
    g.runSeen = this.epoch;
    this.stats.portGroups++;
    return true;
  }

  /**
   * The engine's next run (`Engine.reset`): the groups made and their automata are kept (they change no
   * result, only what a scan costs), counted again as each is first met. Once `portGroupsMax` groups are
   * held, all are dropped with their automata, so a run after many others holds at most twice the bound.
   */
  reset(): void {
    this.epoch++;
    if (this.held < this.groupsMax) return;
    this.portGroups.clear();
    this.portGroupMemo.clear();
    this.kindShared.clear();
    this.groupStates = 0;
    this.held = 0;
    const a = this.allRules;
    a.packetAlways.clear();
    a.alwaysKey = Number.NaN;
    a.alwaysLast = undefined;
    this.packetAlwaysLists = 0;
  }

  /**
   * `prefilterScan` of a stream window (`st.window[0, st.len)`) whose bytes before `newStart` an earlier
   * delivery scanned: only the new bytes are scanned, resumed where that scan stopped, and the patterns
   * earlier scans found in bytes still in the window are marked too (a superset: a pattern may have begun
   * before the window, which only costs an evaluation). Without that continuity, the whole window.
   */
  prefilterWindow(g: RuleGroup, st: ScannedWindow, newStart: number): void {
    this.clearHits(g);
    if (!g.matcher || st.len === 0) return;
    const matcher = this.groupScanner(g, st.len - newStart)!;
    let from = newStart;
    let sc = st.scan;
    if (!sc || sc.end !== st.base + newStart) {
      sc = st.scan ??= {
        matcher,
        state: 0,
        end: 0,
        // (8 entries to begin with: arrays of 64 bytes or less live in the V8 heap, larger ones cost an
        // allocation of their own; they grow below)
        ids: new Int32Array(8),
        ends: new Float64Array(8),
        n: 0,
      };
      sc.state = 0;
      sc.n = 0;
      from = 0;
    } else if (sc.matcher !== matcher) {
      // the group has moved to its own automaton, where the state resumed in means nothing: the new
      // bytes scanned from its root, begun early enough for every pattern that ends in them
      sc.state = 0;
      from = Math.max(0, newStart - matcher.longestPattern + 1);
    }
    sc.matcher = matcher;
    // first the new bytes, on a clean slate, so their list is complete
    sc.state = matcher.scanFrom(sc.state, st.window.subarray(from, st.len), g.hit, this.hits);
    sc.end = st.base + st.len;
    const hits = this.hits;
    const fresh = hits.n;
    // then what earlier scans found in bytes still in the window; a pattern the new bytes hold (marked
    // already) leaves its entry for the one made below with the later end
    const hit = g.hit;
    const ids = sc.ids;
    const ends = sc.ends;
    let keep = 0;
    for (let k = 0; k < sc.n; k++) {
      const id = ids[k]!;
      const e = ends[k]!;
      if (e <= st.base || hit[id] !== 0) continue;
      hit[id] = 1;
      hits.push(id);
      ids[keep] = id;
      ends[keep] = e;
      keep++;
    }
    if (keep + fresh > ids.length) {
      let cap = ids.length * 2;
      while (cap < keep + fresh) cap *= 2;
      sc.ids = new Int32Array(cap);
      sc.ids.set(ids.subarray(0, keep));
      sc.ends = new Float64Array(cap);
      sc.ends.set(ends.subarray(0, keep));
    }
    // (element by element: a few ids a delivery, where a view and `set` cost more than the copy)
    const freshIds = hits.ids;
    const toIds = sc.ids;
    const toEnds = sc.ends;
    for (let k = 0; k < fresh; k++) {
      toIds[keep + k] = freshIds[k]!;
      toEnds[keep + k] = sc.end;
    }
    sc.n = keep + fresh;
  }

  /** Clears the marks the last scan set, before a scan into `g.hit`. */
  private clearHits(g: RuleGroup): void {
    const hits = this.hits;
    const last = this.lastHit;
    for (let k = 0; k < hits.n; k++) last[hits.ids[k]!] = 0;
    hits.clear();
    this.lastHit = g.hit;
  }

  /** A new inspection (a packet's payload or a stream delivery): counted, no stage passed yet. */
  startInspection(): void {
    this.stats.stageInspections++;
    this.stagePrefilterSeen = false;
    this.stageAllStringsSeen = false;
  }

  /**
   * Stages 2 and 3 for rule `i` of group `g` on the bytes scanned last: its fast pattern, then (with
   * `allStrings`) its other contents; counts each stage the inspection passed once (`seen`).
   */
  stringsPass(g: RuleGroup, i: number): boolean {
    const fp = g.fp[i]!;
    if (fp >= 0 && g.hit[fp] === 0) {
      this.stats.rulesPrefiltered++;
      return false;
    }
    if (!this.stagePrefilterSeen) {
      this.stagePrefilterSeen = true;
      this.stats.stagePrefilterOut++;
    }
    const rest = g.rules[i]!.rest;
    if (rest && !allPresent(rest, g.hit)) {
      this.stats.rulesAllStringsFiltered++;
      return false;
    }
    if (!this.stageAllStringsSeen) {
      this.stageAllStringsSeen = true;
      this.stats.stageAllStringsOut++;
    }
    return true;
  }

  /**
   * The rules of `g` an inspection visits after the scan (`this.hits`): those whose fast pattern it marked
   * and those without one, as ascending indices into `g.rules` (`this.cand[0, n)`; returns n). Every other
   * rule fails stage 2.
   */
  candidates(g: RuleGroup, always: Int32Array): number {
    const cand = this.cand;
    cand.set(always);
    const n = appendByPattern(cand, always.length, this.hits, g.byFpStart, g.byFp);
    sortPrefix(cand, n);
    return n;
  }

  /** The rules of `g` an inspection consults (stage 1 by `admit`) per prefix; see `RuleGroup.consulted`. */
  consultedPrefix(g: RuleGroup, key: number, admit: (c: Compiled) => 0 | 1 | 2): Int32Array {
    let p = g.consulted.get(key);
    if (!p) {
      p = new Int32Array(2 * (g.rules.length + 1));
      for (let i = 0; i < g.rules.length; i++) {
        const a = admit(g.rules[i]!);
        p[2 * i + 2] = p[2 * i]! + (a > 0 ? 1 : 0);
        p[2 * i + 3] = p[2 * i + 1]! + (a === 2 && g.fp[i]! >= 0 ? 1 : 0);
      }
      g.consulted.set(key, p);
    }
    return p;
  }

  /**
   * The rules of `g.always` a packet inspection of kind `key` visits (`flags`: a TCP packet's flags byte,
   * else -1; the list is kept under `key * 257 + flags + 1`): those stage 1 admits, less those whose
   * header-field tests fail on every packet of the protocol (an `ip_proto` of another protocol, an ICMP
   * field on TCP or UDP, TCP flags or numbers on another protocol; 97,137 such visits per pass of
   * ndpi-mix-a) or on every TCP packet with these flags (`flags:S` on an ACK; 82,653 visits a pass), which
   * the rule loop would drop at `headerPass` with no other effect. When the first rule admitted is such a
   * rule it is the list's marker: an inspection that gets that far passes the prefilter stages
   * (`stringsPass` marks them on a rule without a fast pattern), with no visit.
   */
  packetAlways(
    g: RuleGroup,
    key: number,
    proto: number,
    inStream: boolean,
    firstInDir: boolean,
    unest: boolean,
    dceOk: boolean,
    flags: number,
  ): PacketAlways {
    const keep: number[] = [];
    let marker = -1;
    for (let k = 0; k < g.always.length; k++) {
      const i = g.always[k]!;
      const c = g.rules[i]!;
      if (!packetAdmits(c, proto, inStream, firstInDir, unest) || (c.dce && !dceOk)) continue;
      if (c.header && neverPasses(c.header, proto, flags)) {
        if (keep.length === 0 && marker < 0) marker = i;
        continue;
      }
      keep.push(i);
    }
    const always = { list: Int32Array.from(keep), marker };
    g.packetAlways.set(key * 257 + flags + 1, always);
    this.packetAlwaysLists++;
    return always;
  }

  /** `packetAlways` lists made, in every group, and their bound (`packetAlwaysListsMax`; a test sets another). */
  packetAlwaysLists = 0;
  readonly packetAlwaysListsMax = packetAlwaysListsMax;

  /**
   * Runs a group's prefilter over `bytes` with `matcher` (none: no rule consulted has a pattern):
   * afterwards `g.hit[g.fp[i]]` says whether rule i's pattern occurs.
   */
  prefilterScan(g: RuleGroup, bytes: Uint8Array, matcher: MultiMatcher | undefined): void {
    this.clearHits(g);
    if (g.matcher && matcher && bytes.length > 0) matcher.scan(bytes, g.hit, this.hits);
  }
}

/** Stage 1 of a packet inspection: whether it consults rule `c` (its kind, protocol, IP-only state). */
export function packetAdmits(
  c: Compiled,
  proto: number,
  inStream: boolean,
  firstInDir: boolean,
  unest: boolean,
): boolean {
  if (c.mode === 'stream' || (c.mode === 'both' && inStream)) return false;
  if (c.proto !== 'ip' && c.proto !== proto) return false;
  if (unest && needsEstablished(c)) return false;
  return !(c.ipOnly === 'ip-only' && !firstInDir);
}

/** Whether a rule matches only in an established flow (`flow:established`, not `stateless`). */
function needsEstablished(c: Compiled): boolean {
  return c.flow !== undefined && !c.flow.stateless && c.flow.established;
}

/** Whether `a` holds exactly `b[0, n)`. */
function sameInts(a: Int32Array, b: Int32Array, n: number): boolean {
  if (a.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Candidate lists at most this long are sorted in place by insertion (almost all: a few sorted runs). */
const insertionSortMax = 64;

/**
 * Sorts `a[0, n)` ascending; short prefixes in place (a typed array's sort copies, per inspection), a
 * longer one only when it is out of order (one candidate list is already sorted).
 */
export function sortPrefix(a: Int32Array, n: number): void {
  if (n > insertionSortMax) {
    for (let i = 1; i < n; i++)
      if (a[i]! < a[i - 1]!) {
        a.subarray(0, n).sort();
        return;
      }
    return;
  }
  for (let i = 1; i < n; i++) {
    const x = a[i]!;
    let j = i - 1;
    while (j >= 0 && a[j]! > x) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = x;
  }
}

/** A rule group with its candidate index: the rules without a fast pattern, and the rules per pattern. */
function ruleGroup(
  rules: Compiled[],
  fp: Int32Array,
  matcher: MultiMatcher | undefined,
  hit: Uint8Array,
): RuleGroup {
  const { start: byFpStart, byPattern: byFp, none: always } = indexByPattern(fp, hit.length);
  return {
    rules,
    fp,
    matcher,
    ownPending: false,
    scanned: 0,
    hit,
    always,
    streamAlways: always.filter((i) => rules[i]!.mode !== 'packet'),
    byFpStart,
    byFp,
    consulted: new Map(),
    packetAlways: new Map(),
    consultedKey: Number.NaN,
    consultedLast: undefined,
    alwaysKey: Number.NaN,
    alwaysLast: undefined,
    kinds: [undefined, undefined, undefined],
    kindScanned: [0, 0, 0],
    runSeen: 0,
  };
}

/**
 * The ids (of `PortGroups.allRules.matcher`, ascending, each once) of the fast patterns of those of `rules`
 * that `admit` takes, with their other contents (`rest`).
 */
function patternIds(rules: Compiled[], fp: Int32Array, admit: (c: Compiled) => boolean): Int32Array {
  const ids = new Set<number>();
  for (let i = 0; i < rules.length; i++) {
    const c = rules[i]!;
    if (fp[i]! < 0 || !admit(c)) continue;
    ids.add(fp[i]!);
    if (c.rest) for (let k = 0; k < c.rest.length; k++) ids.add(c.rest[k]!);
  }
  return Int32Array.from(ids).sort();
}

/** `g.consulted`'s entry for `key`, if made (the last one read without a lookup). */
export function consultedOf(g: RuleGroup, key: number): Int32Array | undefined {
  if (g.consultedKey === key) return g.consultedLast;
  const p = g.consulted.get(key);
  if (p) {
    g.consultedKey = key;
    g.consultedLast = p;
  }
  return p;
}

/**
 * Indices grouped by pattern: `byPattern[start[id]]` to `byPattern[start[id + 1]]` lists, ascending, every
 * i with `ids[i] === id` (ids below `patterns`), and `none` every i with `ids[i] < 0`.
 */
export function indexByPattern(
  ids: Int32Array,
  patterns: number,
): { start: Int32Array; byPattern: Int32Array; none: Int32Array } {
  const start = new Int32Array(patterns + 1);
  let none = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i]! < 0) none++;
    else start[ids[i]! + 1]!++;
  }
  for (let id = 0; id < patterns; id++) start[id + 1]! += start[id]!;
  const byPattern = new Int32Array(ids.length - none);
  const fill = start.slice(0, patterns);
  const noneIdx = new Int32Array(none);
  none = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i]! < 0) noneIdx[none++] = i;
    else byPattern[fill[ids[i]!]!++] = i;
  }
  return { start, byPattern, none: noneIdx };
}

/**
 * Appends to `cand` from `n` the indices `byPattern` lists (by `start`, as `indexByPattern` makes them) for
 * each pattern id in `ids`; returns the new length. Each id's run ascends; the whole needs `sortPrefix`.
 */
export function appendByPattern(
  cand: Int32Array,
  n: number,
  ids: IdList,
  start: Int32Array,
  byPattern: Int32Array,
): number {
  for (let k = 0; k < ids.n; k++) {
    const id = ids.ids[k]!;
    const end = start[id + 1]!;
    for (let j = start[id]!; j < end; j++) cand[n++] = byPattern[j]!;
  }
  return n;
}

/** Prefilter patterns with ids, one per pattern as the automaton sees it (case-folded). */
export class PatternSet {
  private readonly ids = new Map<string, number>();
  readonly list: Uint8Array[] = [];

  id(bytes: Uint8Array): number {
    const key = Buffer.from(bytes).toString('latin1').toLowerCase();
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.list.length;
      this.ids.set(key, id);
      this.list.push(bytes);
    }
    return id;
  }
}

/** Stage 3, Pigasus' all-strings check: whether the scan marked each of a rule's other contents. */
function allPresent(rest: Int32Array, hit: Uint8Array): boolean {
  for (let i = 0; i < rest.length; i++) if (hit[rest[i]!] === 0) return false;
  return true;
}

/**
 * The content a prefilter keys a rule on, with the buffer it is in: a positive content must occur in its
 * buffer for the rule to match; the `fast_pattern` one if the rule names it, else the longest (the rarest,
 * most likely). Undefined when the rule has no positive content.
 */
export function fastContent(
  groups: { buffer: string; steps: Step[] }[],
): { buffer: string; bytes: Uint8Array } | undefined {
  let best: { buffer: string; bytes: Uint8Array } | undefined;
  for (const g of groups)
    for (const st of g.steps) {
      if (st.kind !== 'content' || st.c.negated || st.c.bytes.length === 0) continue;
      if (st.c.fastPattern) return { buffer: g.buffer, bytes: st.c.bytes };
      if (!best || st.c.bytes.length > best.bytes.length) best = { buffer: g.buffer, bytes: st.c.bytes };
    }
  return best;
}
