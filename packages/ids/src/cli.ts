import { createWriteStream, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, type Command, type DemoStep, parseFlags, UsageError } from '@strata/cli';
import { alertFast, eveJson } from './detect.js';
import { loadRules, runCapture } from './run.js';

const idsCmd: Command = {
  name: 'ids',
  summary: 'match Snort rules against packet captures (per-packet engine; no stream reassembly yet)',
  help: `Runs Snort 3 / Snort 2.9 / Suricata rules over pcap or pcapng files and prints alerts.

This engine matches each packet's own payload (no TCP reassembly yet, no HTTP buffers, no thresholds);
rules it cannot evaluate are listed on stderr with the reason.

Usage: strata ids --rules FILE... --pcap FILE... [--var NAME=VALUE]... [--format fast|json] [--alerts FILE]
                  [--stats FILE] [--midstream] [--checksum-validation all|none]

Example:
  strata ids --rules ../shared/ids/rules/snort3-community.rules --pcap ../shared/ids/traces/ndpi-mix-a.pcap --format json`,
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      rules: { type: 'string', multiple: true },
      pcap: { type: 'string', multiple: true },
      var: { type: 'string', multiple: true },
      format: { type: 'string' },
      alerts: { type: 'string' },
      stats: { type: 'string' },
      midstream: { type: 'boolean' },
      'checksum-validation': { type: 'string' },
    });
    const rulesFiles = (values.rules as string[] | undefined) ?? [];
    const pcaps = (values.pcap as string[] | undefined) ?? [];
    if (rulesFiles.length === 0 || pcaps.length === 0)
      throw new UsageError('expected --rules FILE and --pcap FILE');
    const format = values.format ?? 'fast';
    if (format !== 'fast' && format !== 'json')
      throw new UsageError(`--format: expected fast or json, got '${format}'`);
    const cv = values['checksum-validation'] ?? 'all';
    if (cv !== 'all' && cv !== 'none')
      throw new UsageError(`--checksum-validation: expected all or none, got '${cv}'`);
    const vars: Record<string, string> = {};
    for (const v of (values.var as string[] | undefined) ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(v);
      if (!m) throw new UsageError(`--var: expected NAME=VALUE, got '${v}'`);
      vars[m[1]!] = m[2]!;
    }
    const rules = [];
    for (const f of rulesFiles) {
      let text: string;
      try {
        text = readFileSync(resolve(io.cwd, f), 'utf8');
      } catch (e) {
        throw new CliError(`--rules ${f}: ${(e as Error).message}`);
      }
      const r = loadRules(text, f);
      for (const e of r.errors) io.stderr.write(`strata ids: ${e}\n`);
      rules.push(...r.rules);
    }
    const out = values.alerts ? createWriteStream(resolve(io.cwd, values.alerts)) : io.stdout;
    const totals = { packets: 0, bytes: 0, seconds: 0, alerts: 0, rulesLoaded: 0, rulesSkipped: 0 };
    for (const p of pcaps) {
      let r: Awaited<ReturnType<typeof runCapture>>;
      try {
        r = await runCapture(resolve(io.cwd, p), rules, {
          vars,
          midstream: values.midstream === true,
          validateChecksums: cv === 'all',
        });
      } catch (e) {
        throw new CliError(`--pcap ${p}: ${(e as Error).message}`);
      }
      for (const a of r.alerts)
        out.write(format === 'json' ? `${JSON.stringify(eveJson(a))}\n` : `${alertFast(a)}\n`);
      if (p === pcaps[0] && !values.quiet) {
        const reasons = new Map<string, number>();
        for (const s of r.rulesSkipped) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
        io.stderr.write(
          `strata ids: ${r.rulesLoaded} rules loaded, ${r.rulesSkipped.length} skipped${[...reasons]
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
    }
    if (out !== io.stdout)
      await new Promise<void>((res) => (out as ReturnType<typeof createWriteStream>).end(res));
    const stats = { ...totals, mbps: (totals.bytes * 8) / 1e6 / Math.max(totals.seconds, 1e-9) };
    if (values.stats) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(resolve(io.cwd, values.stats), `${JSON.stringify(stats, null, 2)}\n`);
    } else if (!values.quiet)
      io.stderr.write(
        `strata ids: ${stats.packets} packets, ${stats.alerts} alerts, ${stats.mbps.toFixed(1)} Mbps\n`,
      );
    return 0;
  },
};

export const commands: Command[] = [idsCmd];
export const demos: DemoStep[] = [];
