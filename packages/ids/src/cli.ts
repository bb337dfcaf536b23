import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  makeDirs,
  openOutput,
  parseBytes,
  parseFlags,
  UsageError,
} from '@strata/cli';
import { compileFilter } from './bpf.js';
import {
  type ClassificationEntry,
  classificationTable,
  parseClassificationConfig,
} from './classification.js';
import { pcreShortMax, pcreStepsMin, pcreStepsPerByteDefault } from './compile.js';
import { conversationFrames } from './craft.js';
import type { PacketLatencyOptions, RuleLatencyOptions, RuleProfileRow } from './engine-api.js';
import {
  type ExceptionPolicyOptions,
  parseExceptionPolicyArgs,
  resolveExceptionPolicies,
} from './exception-policy.js';
import { alertFast, alertFastWith, eveJsonWith } from './output.js';
import { mergeProfiles, ParallelRunner, refuseRateFilters, type WorkerLoad, workersMax } from './parallel.js';
import { encodePcap } from './pcap.js';
import type { Rule } from './rules.js';
import {
  type CaptureInput,
  loadRules,
  Pipeline,
  type PipelineOptions,
  type RunOptions,
  type RunResult,
  runCapture,
  runPipeline,
} from './run.js';
import { type OverlapPolicy, overlapPolicies } from './stream.js';
import { EventFilters, parseThresholdConfig, type ThresholdEntry } from './threshold-config.js';
import { parseVarsFile } from './vars.js';

const idsCmd: Command = {
  name: 'ids',
  summary:
    'match Snort rules against packet captures (flows, TCP reassembly, HTTP, per-rule matcher, workers)',
  help: `Runs Snort 3 / Snort 2.9 / Suricata rules over pcap or pcapng files and prints alerts.

TCP sessions are tracked and reassembled; payload rules on tcp match the reassembled stream (tcp-pkt:
single packets only, tcp-stream: the stream only). HTTP/1.x is parsed on the reassembled streams and
the HTTP buffers (http_uri, http_header, file_data, ...) are filled; rules it cannot evaluate are
listed on stderr with the reason.

Usage: strata ids --rules FILE... (--pcap FILE | FILE)... [--vars FILE]... [--var NAME=VALUE]...
                  [--classification FILE]... [--threshold-file FILE]...
                  [--format fast|json] [--alerts FILE] [--stats FILE] [--midstream] [--async-oneside] [--vlan-agnostic] [--tunnel-agnostic] [--checksum-validation all|none|auto]
                  [--overlap-policy POLICY] [--reassembly-depth BYTES] [--reassembly-memcap BYTES] [--stream-release ack|immediate]
                  [--exception-policy [EXCEPTION=]POLICY]...
                  [--workers N] [--ordered] [--ips [--out FILE]] [--log-pcap FILE] [--action-order A,B,C,D]
                  [--rule-latency US [--rule-suspend N] [--rule-suspend-ms MS]] [--packet-latency US [--fastpath]]
                  [--latency-alerts] [--profile-rules N] [--pcre-steps N] [--bpf EXPR]

  FILE                 a pcap or pcapng capture; - reads one from standard input (tcpdump -w - | ...);
                       several are run in order, each on its own (no flow or threshold carried over)
  --vars FILE          rule variables: snort.conf ipvar/portvar/var lines, suricata.yaml address-groups
                       and port-groups, or NAME=VALUE lines; --var wins over a file
  --classification FILE  a classification.config (config classification: NAME,DESCRIPTION,PRIORITY):
                       its classes are added to the built-in ones and replace those of the same name (a
                       later file wins); a rule whose classtype is in neither is not loaded (Snort 3's)
  --threshold-file FILE  a threshold.config: suppress gen_id G, sig_id S [, track by_src|by_dst|by_either,
                       ip SPEC] and event_filter (or threshold) gen_id G, sig_id S, type limit|threshold|both,
                       track by_src|by_dst|by_rule|by_both, count C, seconds T; sig_id 0 (and gen_id 0) for
                       all rules; a file's event_filter replaces a rule's own threshold (Suricata's);
                       rate_filter gen_id G, sig_id S, track ..., count C, seconds T, new_action A,
                       timeout T [, apply_to SPEC] changes a match's action past a rate (with --workers:
                       not with --ips, nor to or from pass). suppress and event_filter cover gid 134
                       (latency events) too; an entry for a gid:sid no loaded rule has is warned of. The
                       stats count alertsSuppressed, alertsRateFiltered and actionsRateFiltered
  --checksum-validation  all (default): a packet with a bad IP/TCP/UDP checksum is matched on its own but
                       moves no TCP state; none: checksums ignored; auto: off when over 10% of the first
                       1,000 packets fail (checksum offloading on the capturing host)
  --overlap-policy     which copy of overlapping TCP data counts: ${overlapPolicies.join(', ')}
                       (default windows, as Suricata's default host-os-policy)
  --reassembly-depth   bytes of each stream direction reassembled (default 1mb; 0: no limit, as Suricata's;
                       SMB connections, with DCE/RPC rules loaded, are reassembled whole)
  --reassembly-memcap  bytes all flows' streams buffer at most together (default 64mb; Suricata's
                       stream.reassembly.memcap): a segment past it is not reassembled
  --exception-policy   what to do when the engine would lose sight of traffic, as Suricata's exception
                       policies: POLICY for all (the master switch, IPS only), EXCEPTION=POLICY for one.
                       EXCEPTION: reassembly-memcap, midstream (a TCP session without its SYN),
                       app-layer-error (HTTP, TLS, DCE/RPC, SMB or SIP stops on input it cannot parse),
                       defrag-memcap.
                       POLICY: ignore (default), pass-packet, pass-flow, bypass (as pass-flow), drop-packet,
                       drop-flow, reject, auto (drop-flow with --ips, else ignore). Without --ips nothing
                       is dropped: a drop or reject policy stops inspection. Stats: exceptionReassemblyMemcap,
                       exceptionMidstream, exceptionAppLayerError, exceptionDefragMemcap
  --stream-release     ack (default; immediate with --ips): inspect stream data once the receiver acknowledged it;
                       immediate: as soon as it is in order (inline)
  --workers N          inspect on N worker threads, flows hashed to workers (default 1: this thread);
                       the stats list each worker's packets, bytes, alerts and busy time
  --reader main|workers
                       with --workers, who reads the capture: this thread, which decodes and sends the
                       packets to the workers (default), or each worker, which reads and decodes the
                       whole capture and inspects its own flows (IDS on a regular file only; with
                       --ips or a pipe this thread reads)
  --ordered            alerts in capture order (always so: workers' alerts are merged by packet)
  --ips                prevention, as Suricata's IPS mode (--simulate-ips): a drop or reject rule drops
                       the packet, and the rest of its flow when the rule's action applies to the flow
                       (IP-only rules, stream and HTTP matches); overlapping TCP bytes keep the first
                       copy and packets are rewritten to it; a reject (rejectsrc) rule also sends back
                       a TCP reset or an ICMP unreachable, rejectdst sends one on to the destination,
                       rejectboth both (written to --out after the packet); stream release
                       defaults to immediate; the stats count packets passed, dropped and rewritten
                       and reject responses; with --workers each worker decides its flows' packets
                       and they are passed on in capture order
  --action-order       the order actions' rules are applied in (Suricata's action-order; default
                       pass,drop,reject,alert): a pass ends a packet's inspection, so what comes first wins
  --log-pcap FILE      write the packets that raised an alert, and those a rule's tag covers after it
                       (tag: session|host_src|host_dst, packets|seconds|bytes N), to a pcap as captured
                       (one engine: not with --workers; stats: packetsTagged, packetsLogged)
  --out FILE           with --ips: write the packets passed on (rewritten ones as rewritten) to a pcap
                       (one capture)
  --rule-latency US    time each rule evaluation (Snort 3's latency.rule.max_time, off by default): one
                       over US microseconds is a timeout; the rules that timed out are listed on stderr
  --rule-suspend N     with --rule-latency: a rule that timed out N times is not evaluated (no match) for
                       --rule-suspend-ms (default 30000; 0: the rest of the run). Alerts then depend on
                       the host's speed
  --packet-latency US  count the packets whose detection ran over US microseconds (Snort 3's
                       latency.packet.max_time, off by default); with --fastpath no more rules are
                       evaluated for such a packet (its flow and reassembly go on). Alerts then
                       depend on the host's speed
  --latency-alerts     with --rule-latency or --packet-latency: alert when a rule is suspended (gid 134
                       sid 1) or re-enabled (sid 2) and when a packet is fastpathed (sid 3), as Snort 3
  --profile-rules N    time every rule evaluation (Snort 3's profiler.rules) and list the N rules that took
                       the most time, with their evaluations, total and slowest time, on stderr and in
                       the stats (over all captures)
  --bpf EXPR           a capture filter in tcpdump's language (Snort's --bpf): host, net, port, portrange,
                       src/dst, ip, ip6, tcp, udp, icmp, icmp6, vlan, proto N, and/or/not, parentheses
                       ('tcp port 80 and not src net 10.0.0.0/8'); a packet it refuses is not inspected
                       (with --ips, passed on); fragments are tested as their datagram. Stats:
                       packetsFiltered
  --pcre-steps N       a pcre with a backreference, and over a buffer past ${pcreShortMax} bytes one whose loops
                       can make V8 polynomial, runs in a matcher that counts its steps: an exec past N
                       steps per byte of its buffer (at least ${pcreStepsMin}) fails (no match; counted in
                       the stats as pcreStepLimits, as PCRE's match limit; default ${pcreStepsPerByteDefault}; 0: V8's
                       RegExp for all, quadratic on some); a pcre with Snort's O flag has no limit

Example:
  strata ids --rules ../shared/ids/rules/snort3-community.rules --pcap ../shared/ids/traces/ndpi-mix-a.pcap --format json`,
  async run(argv, io) {
    const { values, tokens } = parseFlags(argv, {
      rules: { type: 'string', multiple: true },
      pcap: { type: 'string', multiple: true },
      var: { type: 'string', multiple: true },
      vars: { type: 'string', multiple: true },
      classification: { type: 'string', multiple: true },
      'threshold-file': { type: 'string', multiple: true },
      format: { type: 'string' },
      alerts: { type: 'string' },
      stats: { type: 'string' },
      midstream: { type: 'boolean' },
      'vlan-agnostic': { type: 'boolean' },
      'tunnel-agnostic': { type: 'boolean' },
      'async-oneside': { type: 'boolean' },
      'checksum-validation': { type: 'string' },
      'overlap-policy': { type: 'string' },
      'reassembly-depth': { type: 'string' },
      'reassembly-memcap': { type: 'string' },
      'exception-policy': { type: 'string', multiple: true },
      'stream-release': { type: 'string' },
      workers: { type: 'string' },
      reader: { type: 'string' },
      ordered: { type: 'boolean' },
      ips: { type: 'boolean' },
      'action-order': { type: 'string' },
      out: { type: 'string' },
      'log-pcap': { type: 'string' },
      'rule-latency': { type: 'string' },
      'rule-suspend': { type: 'string' },
      'rule-suspend-ms': { type: 'string' },
      'packet-latency': { type: 'string' },
      fastpath: { type: 'boolean' },
      'latency-alerts': { type: 'boolean' },
      'profile-rules': { type: 'string' },
      'pcre-steps': { type: 'string' },
      bpf: { type: 'string' },
    });
    const ips = values.ips === true;
    if (values.out !== undefined && !ips) throw new UsageError('--out FILE needs --ips');
    const bpf = values.bpf as string | undefined;
    if (bpf !== undefined)
      try {
        compileFilter(bpf); // a bad filter is a usage error before any rule or capture is read
      } catch (e) {
        throw new UsageError(`--bpf: ${(e as Error).message}`);
      }
    const workers = values.workers === undefined ? 1 : Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > workersMax)
      throw new UsageError(`--workers: expected an integer from 1 to ${workersMax}, got '${values.workers}'`);
    const reader = values.reader ?? 'main';
    if (reader !== 'main' && reader !== 'workers')
      throw new UsageError(`--reader: expected main or workers, got '${values.reader}'`);
    if (values.reader !== undefined && workers === 1)
      throw new UsageError('--reader chooses who reads for the workers: give --workers N (N > 1)');
    const rulesFiles = (values.rules as string[] | undefined) ?? [];
    // captures also as plain arguments, as `snort -r` users type them; run in the order given
    const pcaps: string[] = [];
    for (const t of tokens)
      if (t.kind === 'positional' || (t.kind === 'option' && t.name === 'pcap')) pcaps.push(t.value!);
    if (rulesFiles.length === 0 || pcaps.length === 0)
      throw new UsageError('expected --rules FILE and a capture (--pcap FILE or FILE)');
    // '-': the capture on standard input (`tcpdump -w - | strata ids --rules R -`)
    if (pcaps.filter((p) => p === '-').length > 1)
      throw new UsageError("'-' (standard input) can be given as a capture once");
    if (values.out !== undefined && pcaps.length > 1)
      throw new UsageError(`--out writes one pcap: give one capture (got ${pcaps.length})`);
    const logPcap = values['log-pcap'] as string | undefined;
    if (logPcap !== undefined && pcaps.length > 1)
      throw new UsageError(`--log-pcap writes one pcap: give one capture (got ${pcaps.length})`);
    if (logPcap !== undefined && workers > 1)
      throw new UsageError('--log-pcap needs one engine: it is not written with --workers');
    const format = values.format ?? 'fast';
    if (format !== 'fast' && format !== 'json')
      throw new UsageError(`--format: expected fast or json, got '${format}'`);
    const cv = values['checksum-validation'] ?? 'all';
    if (cv !== 'all' && cv !== 'none' && cv !== 'auto')
      throw new UsageError(`--checksum-validation: expected all, none or auto, got '${cv}'`);
    const policy = values['overlap-policy'] ?? 'windows';
    if (!overlapPolicies.includes(policy as OverlapPolicy))
      throw new UsageError(
        `--overlap-policy: expected one of ${overlapPolicies.join(', ')}, got '${policy}'`,
      );
    let actionOrder: string[] | undefined;
    if (values['action-order'] !== undefined) {
      actionOrder = values['action-order'].split(',').map((x) => x.trim());
      const known = ['pass', 'drop', 'reject', 'alert'];
      if (actionOrder.length !== 4 || known.some((a) => !actionOrder!.includes(a)))
        throw new UsageError(
          `--action-order: expected pass, drop, reject and alert in some order, got '${values['action-order']}'`,
        );
    }
    const release = values['stream-release'] ?? (ips ? 'immediate' : 'ack');
    if (release !== 'ack' && release !== 'immediate')
      throw new UsageError(`--stream-release: expected ack or immediate, got '${release}'`);
    const depth =
      values['reassembly-depth'] === undefined
        ? 2 ** 20
        : parseBytes(values['reassembly-depth'], '--reassembly-depth');
    const memcap =
      values['reassembly-memcap'] === undefined
        ? undefined
        : parseBytes(values['reassembly-memcap'], '--reassembly-memcap');
    if (memcap === 0) throw new UsageError('--reassembly-memcap: at least 1 byte');
    let exceptionPolicy: ExceptionPolicyOptions | undefined;
    if (values['exception-policy'] !== undefined)
      try {
        exceptionPolicy = parseExceptionPolicyArgs(values['exception-policy'] as string[]);
        // refused here, before any rule or capture is read (a midstream policy that does not fit the mode)
        resolveExceptionPolicies(exceptionPolicy, ips, values.midstream === true);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    const ruleLatency = ruleLatencyFlags(values);
    const profileTop = wholeFlag(values, 'profile-rules', 1);
    const pcreSteps = wholeFlag(values, 'pcre-steps', 0);
    const profiles: RuleProfileRow[][] = [];
    const packetLatency = packetLatencyFlags(values);
    if (values['latency-alerts'] === true) {
      if (!ruleLatency && !packetLatency)
        throw new UsageError('--latency-alerts needs --rule-latency US or --packet-latency US');
      if (ruleLatency) ruleLatency.alert = true;
      if (packetLatency) packetLatency.alert = true;
    }
    const vars: Record<string, string> = {};
    for (const f of (values.vars as string[] | undefined) ?? []) {
      let text: string;
      try {
        text = readFileSync(resolve(io.cwd, f), 'utf8');
      } catch (e) {
        throw new CliError(`--vars ${f}: ${(e as Error).message}`);
      }
      try {
        Object.assign(vars, parseVarsFile(text, f));
      } catch (e) {
        throw new CliError((e as Error).message);
      }
    }
    for (const v of (values.var as string[] | undefined) ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(v);
      if (!m) throw new UsageError(`--var: expected NAME=VALUE, got '${v}'`);
      vars[m[1]!] = m[2]!;
    }
    const classes: ClassificationEntry[] = [];
    for (const f of (values.classification as string[] | undefined) ?? [])
      for (const c of parseConfigFile('--classification', f, io.cwd, parseClassificationConfig))
        classes.push(c);
    const thresholds: ThresholdEntry[] = [];
    for (const f of (values['threshold-file'] as string[] | undefined) ?? [])
      for (const e of parseConfigFile('--threshold-file', f, io.cwd, parseThresholdConfig))
        thresholds.push(e);
    try {
      new EventFilters(thresholds, vars); // a suppress ip's variables, checked before any capture is read
      refuseRateFilters(thresholds, workers, ips);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    const classTable = classificationTable(classes);
    const fastOf = alertFastWith(classTable);
    const eveOf = eveJsonWith(classTable);
    const rules: Rule[] = [];
    let malformed = 0;
    let incomplete = 0;
    for (const f of rulesFiles) {
      let text: string;
      try {
        text = readFileSync(resolve(io.cwd, f), 'utf8');
      } catch (e) {
        throw new CliError(`--rules ${f}: ${(e as Error).message}`);
      }
      const r = loadRules(text, f);
      for (const e of r.errors) io.stderr.write(`strata ids: ${e}\n`);
      malformed += r.errors.length;
      for (const rule of r.rules) rules.push(rule); // not spread: a file of 150,000 rules overflowed the stack
    }
    // the output files are opened before any work: a path that cannot be written fails at once
    const alertsFile = values.alerts ? openOutput('--alerts', resolve(io.cwd, values.alerts)) : undefined;
    const statsFile = values.stats ? openOutput('--stats', resolve(io.cwd, values.stats)) : undefined;
    const out = alertsFile?.stream ?? io.stdout;
    // with several captures each worker keeps its engine for the next, reset (built once, as on one thread)
    const pool = workers > 1 ? new ParallelRunner(workers, { spareEngines: pcaps.length > 1 }) : undefined;
    const workerLoads: WorkerLoad[][] = [];
    // who read each capture (--reader workers falls back to this thread for --ips and pipes)
    const readBy = new Set<string>();
    // for the stats file: the rules that timed out and the failed inspections, by capture
    const slowRules: ({ capture: string } & RunResult['ruleLatency'][number])[] = [];
    const failedInspections: ({ capture: string } & RunResult['packetFaults'][number])[] = [];
    const totals = {
      packets: 0,
      bytes: 0,
      seconds: 0,
      cpuSeconds: 0,
      alerts: 0,
      rulesLoaded: 0,
      rulesSkipped: 0,
      alertsSuppressed: 0,
      alertsRateFiltered: 0,
      actionsRateFiltered: 0,
      packetsFiltered: 0,
      decodeFailures: 0,
      tunneled: 0,
      badChecksums: 0,
      flows: 0,
      flowsEvicted: 0,
      segmentsInOrder: 0,
      segmentsOutOfOrder: 0,
      segmentsRetransmitted: 0,
      segmentsDropped: 0,
      streamBytes: 0,
      datagramsReassembled: 0,
      reassemblyPeakBytes: 0,
      httpRequests: 0,
      httpResponses: 0,
      httpRulesEvaluated: 0,
      httpAnomalies: {} as Record<string, number>,
      mailMessages: 0,
      mailParts: 0,
      mailRulesEvaluated: 0,
      dceCallsReassembled: 0,
      dceSmbRequests: 0,
      stageInspections: 0,
      stagePortGroupOut: 0,
      stagePrefilterOut: 0,
      stageAllStringsOut: 0,
      stageFullMatcherIn: 0,
    };
    const limits = Object.fromEntries(limitCounters.map((k) => [k, 0])) as Record<LimitCounter, number>;
    const verdicts = ips
      ? { packetsPassed: 0, packetsDropped: 0, packetsRewritten: 0, flowsDropped: 0, rejectResponses: 0 }
      : undefined;
    let one: Pipeline | undefined;
    let packetsLogged: number | undefined;
    for (const p of pcaps) {
      let r: Awaited<ReturnType<typeof runCapture>>;
      try {
        // one thread: one Pipeline for every capture, reset between them (its engine built once)
        const run = pool
          ? async (input: CaptureInput, rs: Rule[], o: PipelineOptions) => {
              const x = await pool.run(input, rs, { ...o, reader });
              readBy.add(x.phases.reader);
              workerLoads.push(x.workers);
              return x;
            }
          : (input: CaptureInput, rs: Rule[], o: RunOptions) => {
              one ??= new Pipeline(rs, o);
              return runPipeline(one, input, o.out, o.logPcap);
            };
        const cpu0 = process.cpuUsage();
        r = await run(p === '-' ? io.stdin : resolve(io.cwd, p), rules, {
          vars,
          ...(classes.length > 0 && { classifications: classes }),
          ...(thresholds.length > 0 && { thresholdConfig: thresholds }),
          midstream: values.midstream === true,
          asyncOneside: values['async-oneside'] === true,
          vlanAgnostic: values['vlan-agnostic'] === true,
          tunnelAgnostic: values['tunnel-agnostic'] === true,
          overlapPolicy: policy as OverlapPolicy,
          reassemblyDepthBytes: depth,
          ...(memcap !== undefined && { reassemblyMemcapBytes: memcap }),
          ...(exceptionPolicy && { exceptionPolicy }),
          streamRelease: release,
          validateChecksums: cv === 'auto' ? 'auto' : cv === 'all',
          ...(ruleLatency && { ruleLatency }),
          ...(packetLatency && { packetLatency }),
          ...(profileTop !== undefined && { profileRules: true }),
          ...(pcreSteps !== undefined && { pcreStepsPerByte: pcreSteps }),
          ...(bpf !== undefined && { filter: bpf }),
          ...(ips && { ips }),
          ...(actionOrder && { actionOrder }),
          ...(values.out !== undefined && { out: resolve(io.cwd, values.out) }),
          ...(logPcap !== undefined && { logPcap: resolve(io.cwd, logPcap) }),
        });
        // the process's CPU (every thread: the workers too) over the run, so the rate per CPU-second
        // does not fall when the machine is busy, as the wall-time rate does
        const cpu = process.cpuUsage(cpu0);
        totals.cpuSeconds += (cpu.user + cpu.system) / 1e6;
      } catch (e) {
        await pool?.close();
        throw new CliError(`${p}: ${(e as Error).message}`);
      }
      for (const a of r.alerts)
        out.write(format === 'json' ? `${JSON.stringify(eveOf(a))}\n` : `${fastOf(a)}\n`);
      if (r.truncated) {
        // the packets before the cut were inspected and their alerts are out; the exit status says the rest
        io.stderr.write(`strata ids: ${p}: ${r.truncated}: the capture is cut short there, read up to it\n`);
        incomplete++;
      }
      // packets the decoder cannot read were not inspected (a capture of one such link type printed 0
      // alerts and exited 0): their alerts are missing, the exit says so
      if (r.unsupportedLinks) {
        io.stderr.write(
          `strata ids: ${p}: ${r.unsupportedLinks.packets} packets of link types the decoder does not know (${r.unsupportedLinks.linkTypes.join(', ')}) were not inspected\n`,
        );
        incomplete++;
      }
      // a rule whose evaluation threw: the run went on without it (it failed whole runs); the exit says so
      for (const x of r.ruleFaults)
        io.stderr.write(`strata ids: ${p}: rule ${x.rule} failed and was counted as no match: ${x.error}\n`);
      if (r.ruleFaults.length > 0) incomplete++;
      for (const x of r.packetFaults)
        io.stderr.write(
          `strata ids: ${p}: the inspection of ${x.where} failed and ended there: ${x.error}\n`,
        );
      if (r.stats.packetFaults > r.packetFaults.length)
        io.stderr.write(
          `strata ids: ${p}: ${r.stats.packetFaults - r.packetFaults.length} more inspections failed\n`,
        );
      if (r.stats.packetFaults > 0) incomplete++;
      if (r.stats.packetTimeouts > 0)
        io.stderr.write(
          `strata ids: ${p}: ${r.stats.packetTimeouts} packets over ${packetLatency!.maxUs} us of detection${packetLatency!.fastpath ? `, ${r.stats.packetsFastpathed} fastpathed (their remaining rules not evaluated)` : ''}\n`,
        );
      if (r.stats.pcreStepLimits > 0)
        io.stderr.write(
          `strata ids: ${p}: ${r.stats.pcreStepLimits} pcre execs ran out of steps (--pcre-steps) and did not match\n`,
        );
      if (r.stats.ruleEvalTimeouts > 0) {
        const shown = r.ruleLatency
          .slice(0, 8)
          .map(
            (x) =>
              `${x.rule} ${x.timeouts} (slowest ${(x.slowestUs / 1000).toFixed(1)} ms${x.suspensions ? `, suspended ${x.suspensions}x` : ''})`,
          );
        const more =
          r.ruleLatency.length > shown.length ? `; ${r.ruleLatency.length - shown.length} more rules` : '';
        io.stderr.write(
          `strata ids: ${p}: ${r.stats.ruleEvalTimeouts} of ${r.stats.ruleEvalsTimed} rule evaluations over ${ruleLatency!.maxUs} us: ${shown.join('; ')}${more}\n`,
        );
      }
      // configuration that does nothing (a threshold.config entry for no loaded rule), said once, even quiet
      if (p === pcaps[0]) for (const w of r.warnings) io.stderr.write(`strata ids: warning: ${w}\n`);
      if (p === pcaps[0] && !values.quiet) {
        const reasons = new Map<string, number>();
        for (const s of r.rulesSkipped) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
        io.stderr.write(
          `strata ids: ${r.rulesLoaded} rules loaded, ${malformed ? `${malformed} malformed (above), ` : ''}${r.rulesSkipped.length} skipped${[
            ...reasons,
          ]
            .slice(0, 8)
            .map(([k, n]) => `; ${n} x ${k}`)
            .join('')}\n`,
        );
      }
      totals.packets += r.packets;
      totals.bytes += r.bytes;
      totals.seconds += r.seconds;
      totals.alerts += r.alerts.length;
      totals.rulesLoaded = r.rulesLoaded;
      totals.rulesSkipped = r.rulesSkipped.length;
      totals.decodeFailures += r.decodeFailures;
      totals.tunneled += r.tunneled;
      totals.alertsSuppressed += r.stats.alertsSuppressed ?? 0;
      totals.alertsRateFiltered += r.stats.alertsRateFiltered ?? 0;
      totals.actionsRateFiltered += r.stats.actionsRateFiltered ?? 0;
      totals.packetsFiltered += r.packetsFiltered ?? 0;
      totals.badChecksums += r.stats.badChecksums;
      totals.flows += r.flows.created;
      totals.flowsEvicted += r.flows.evicted.capacity;
      totals.segmentsInOrder += r.stats.segmentsInOrder;
      totals.segmentsOutOfOrder += r.stats.segmentsOutOfOrder;
      totals.segmentsRetransmitted += r.stats.segmentsRetransmitted;
      totals.segmentsDropped += r.stats.segmentsDropped;
      totals.streamBytes += r.stats.streamBytes;
      totals.datagramsReassembled += r.defrag?.reassembled ?? 0;
      totals.reassemblyPeakBytes = Math.max(totals.reassemblyPeakBytes, r.reassemblyPeakBytes);
      totals.httpRequests += r.stats.httpRequests;
      totals.httpResponses += r.stats.httpResponses;
      totals.httpRulesEvaluated += r.stats.httpRulesEvaluated;
      totals.mailMessages += r.stats.mailMessages;
      totals.mailParts += r.stats.mailParts;
      totals.mailRulesEvaluated += r.stats.mailRulesEvaluated;
      totals.dceCallsReassembled += r.stats.dceCallsReassembled;
      totals.dceSmbRequests += r.stats.dceSmbRequests;
      totals.stageInspections += r.stats.stageInspections;
      totals.stagePortGroupOut += r.stats.stagePortGroupOut;
      totals.stagePrefilterOut += r.stats.stagePrefilterOut;
      totals.stageAllStringsOut += r.stats.stageAllStringsOut;
      totals.stageFullMatcherIn += r.stats.stageFullMatcherIn;
      for (const k of limitCounters) limits[k] += r.stats[k];
      for (const x of r.ruleLatency) slowRules.push({ capture: p, ...x });
      for (const x of r.packetFaults) failedInspections.push({ capture: p, ...x });
      profiles.push(r.ruleProfile);
      for (const [k, n] of Object.entries(r.httpAnomalies))
        if (n > 0) totals.httpAnomalies[k] = (totals.httpAnomalies[k] ?? 0) + n;
      if (verdicts && r.verdicts) {
        verdicts.packetsPassed += r.verdicts.passed;
        verdicts.packetsDropped += r.verdicts.dropped;
        verdicts.rejectResponses += r.verdicts.responses;
        verdicts.packetsRewritten += r.stats.packetsRewritten;
        verdicts.flowsDropped += r.stats.flowsDropped;
      }
      if (r.packetsLogged !== undefined) packetsLogged = r.packetsLogged;
    }
    await pool?.close();
    await alertsFile?.close();
    const ruleProfile = profileTop === undefined ? undefined : mergeProfiles(profiles).slice(0, profileTop);
    if (ruleProfile) {
      io.stderr.write(
        `strata ids: the ${ruleProfile.length} rules that took the most time (evaluations, total ms, average and slowest us):\n`,
      );
      for (const x of ruleProfile)
        io.stderr.write(
          `  ${x.rule.padEnd(12)} ${String(x.checks).padStart(9)} ${(x.totalUs / 1000).toFixed(2).padStart(10)} ${(x.totalUs / x.checks).toFixed(1).padStart(9)} ${x.maxUs.toFixed(1).padStart(9)}\n`,
        );
    }
    const segments = totals.segmentsInOrder + totals.segmentsOutOfOrder;
    const stats = {
      ...totals,
      ...limits,
      ...(slowRules.length > 0 && { slowRules }),
      ...(failedInspections.length > 0 && { failedInspections }),
      ...(ruleProfile && { ruleProfile }),
      ...verdicts,
      ...(packetsLogged !== undefined && { packetsLogged }),
      mbps: (totals.bytes * 8) / 1e6 / Math.max(totals.seconds, 1e-9),
      mbpsPerCpuSecond: (totals.bytes * 8) / 1e6 / Math.max(totals.cpuSeconds, 1e-9),
      outOfOrderShare: segments ? totals.segmentsOutOfOrder / segments : 0,
      // inspections (packets and stream chunks) where some rule reached the full matcher
      fullMatcherShare: totals.stageInspections ? totals.stageFullMatcherIn / totals.stageInspections : 0,
      ...(pool && {
        reader: [...readBy].join(','),
        workers: Array.from({ length: workers }, (_, i) =>
          workerLoads.reduce(
            (w, run) => {
              const x = run[i]!;
              return {
                packets: w.packets + x.packets,
                bytes: w.bytes + x.bytes,
                alerts: w.alerts + x.alerts,
                busyMs: w.busyMs + x.busyMs,
                cpuMs: w.cpuMs + x.cpuMs,
              };
            },
            { packets: 0, bytes: 0, alerts: 0, busyMs: 0, cpuMs: 0 },
          ),
        ),
      }),
    };
    if (statsFile) {
      statsFile.stream.write(`${JSON.stringify(stats, null, 2)}\n`);
      await statsFile.close();
    } else if (!values.quiet)
      io.stderr.write(
        `strata ids: ${stats.packets} packets${bpf !== undefined ? ` (${stats.packetsFiltered} not inspected: --bpf)` : ''}, ${verdicts ? `${verdicts.packetsPassed} passed, ${verdicts.packetsDropped} dropped (flows dropped: ${verdicts.flowsDropped}), ${verdicts.packetsRewritten} rewritten, ${verdicts.rejectResponses} reject responses, ` : ''}${stats.alerts} alerts${thresholds.length > 0 ? ` (${stats.alertsSuppressed} suppressed, ${stats.alertsRateFiltered} held by thresholds${thresholds.some((e) => e.kind === 'rate_filter') ? `, ${stats.actionsRateFiltered} actions changed by rate_filter` : ''})` : ''}, ${stats.mbps.toFixed(1)} Mbps (${stats.mbpsPerCpuSecond.toFixed(1)} per CPU-second), ${stats.flows} flows, ${(stats.outOfOrderShare * 100).toFixed(1)}% of segments out of order, ${(stats.fullMatcherShare * 100).toFixed(1)}% of inspections reach the full matcher, reassembly peak ${stats.reassemblyPeakBytes} bytes, HTTP ${stats.httpRequests} requests / ${stats.httpResponses} responses, ${Object.values(stats.httpAnomalies).reduce((a, b) => a + b, 0)} HTTP anomalies, mail ${stats.mailMessages} messages / ${stats.mailParts} MIME parts\n`,
      );
    return incomplete > 0 ? 1 : 0;
  },
};

export const commands: Command[] = [idsCmd];

/**
 * The engine's rule and packet latency counters, its pcre step limits, the exception policies it applied
 * the midstream sessions it turned around and the packets tags covered, summed over the captures into the
 * stats.
 */
const limitCounters = [
  'pcreStepLimits',
  'ruleEvalsTimed',
  'ruleEvalTimeouts',
  'ruleSuspensions',
  'ruleReenables',
  'packetTimeouts',
  'packetsFastpathed',
  'exceptionReassemblyMemcap',
  'exceptionMidstream',
  'exceptionAppLayerError',
  'exceptionDefragMemcap',
  'flowsReversed',
  'packetsTagged',
] as const;
type LimitCounter = (typeof limitCounters)[number];

/** A config file given to `flag`, read and parsed; a file that cannot be read or parsed is a CliError. */
function parseConfigFile<T>(
  flag: string,
  f: string,
  cwd: string,
  parse: (text: string, file: string) => T[],
): T[] {
  let text: string;
  try {
    text = readFileSync(resolve(cwd, f), 'utf8');
  } catch (e) {
    throw new CliError(`${flag} ${f}: ${(e as Error).message}`);
  }
  try {
    return parse(text, f);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** The whole-number value of flag `--flag` (at least `min`), or undefined when not given. */
function wholeFlag(values: Record<string, unknown>, flag: string, min: number): number | undefined {
  const v = values[flag] as string | undefined;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`--${flag}: expected a whole number from ${min}, got '${v}'`);
  return n;
}

/** --packet-latency and --fastpath as EngineOptions.packetLatency (undefined: off). */
function packetLatencyFlags(values: Record<string, unknown>): PacketLatencyOptions | undefined {
  const maxUs = wholeFlag(values, 'packet-latency', 1);
  if (maxUs === undefined) {
    if (values.fastpath === true) throw new UsageError('--fastpath needs --packet-latency US');
    return undefined;
  }
  return { maxUs, fastpath: values.fastpath === true };
}

/** --rule-latency, --rule-suspend and --rule-suspend-ms as EngineOptions.ruleLatency (undefined: off). */
function ruleLatencyFlags(values: Record<string, unknown>): RuleLatencyOptions | undefined {
  const maxUs = wholeFlag(values, 'rule-latency', 1);
  const threshold = wholeFlag(values, 'rule-suspend', 1);
  const maxSuspendMs = wholeFlag(values, 'rule-suspend-ms', 0);
  if (maxUs === undefined) {
    if (threshold !== undefined || maxSuspendMs !== undefined)
      throw new UsageError('--rule-suspend and --rule-suspend-ms need --rule-latency US');
    return undefined;
  }
  if (maxSuspendMs !== undefined && threshold === undefined)
    throw new UsageError('--rule-suspend-ms needs --rule-suspend N');
  return {
    maxUs,
    ...(threshold !== undefined && { suspend: true, suspendThreshold: threshold }),
    ...(maxSuspendMs !== undefined && { maxSuspendMs }),
  };
}
/** A capture of one HTTP conversation whose response carries `uid=0(root)`, built here for the demo. */
function demoCapture(): Buffer {
  const frames = conversationFrames(
    [
      [0, 'GET /cgi-bin/id HTTP/1.0\r\n\r\n'],
      [1, 'HTTP/1.0 200 OK\r\n\r\nuid=0(root) gid=0(root)\n'],
    ],
    { client: '192.168.1.10', server: '203.0.113.5', serverPort: 80 },
  );
  return encodePcap(frames.map((data, i) => ({ tsUs: (1_700_000_000 + i) * 1e6, data })));
}

export const demos: DemoStep[] = [
  {
    name: 'ids',
    async run(io, dir) {
      const { writeFileSync } = await import('node:fs');
      const { join } = await import('node:path');
      await makeDirs(dir);
      const pcap = join(dir, 'demo.pcap');
      writeFileSync(pcap, demoCapture());
      const rules = loadRules(
        [
          'alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"ATTACK-RESPONSES id check returned root"; flow:established,to_client; content:"uid=0|28|root|29|"; classtype:bad-unknown; sid:1000498; rev:1;)',
          'alert tcp $HOME_NET any -> $EXTERNAL_NET 80 (msg:"request for /cgi-bin/id"; flow:established,to_server; content:"GET"; depth:3; content:"/cgi-bin/id"; distance:1; sid:1000499; rev:1;)',
          'alert tcp any any -> any any (msg:"never: a content that is not there"; content:"uid=1000"; sid:1000500; rev:1;)',
        ].join('\n'),
        'demo.rules',
      ).rules;
      const r = await runCapture(pcap, rules);
      for (const a of r.alerts) io.stdout.write(`${alertFast(a)}\n`);
      io.stdout.write(
        `ids: ${r.packets} packets, ${r.rulesLoaded} rules, ${r.alerts.length} alerts (sids ${r.alerts.map((a) => a.sid).join(', ')})\n`,
      );
    },
  },
];
