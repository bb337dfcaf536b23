/**
 * The side-by-side benchmark harness. A benchmark declares its cases, its subject and its anchors; the
 * harness warms each up, then alternates subject and anchors in the same process for at least 5 measured
 * repetitions, reports median/min/max and the speed ratio subject/anchor, writes JSON under
 * `bench/results/` and renders an SVG chart (one line per implementation) that a README can embed.
 * The machine is shared and noisy: only ratios measured within one run mean anything.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One operation; the harness calls it many times. May be async. */
export type Op = () => unknown;

export interface Impl<C> {
  name: string;
  /** Builds the operation for a case (allocate inputs here, not in the op). */
  setup(c: C): Op | Promise<Op>;
  /** Frees what setup made, after the case. */
  teardown?(c: C): void | Promise<void>;
}

export interface Case {
  /** Label in tables, e.g. `16 B` or `10M normal`. */
  name: string;
  /** Position on the chart's x axis (input size, count...). */
  x: number;
  /** Bytes processed by one op, for GB/s. */
  bytes?: number;
  /** Items processed by one op (keys, records), for items/s. */
  items?: number;
}

export interface BenchSpec<C extends Case> {
  /** File name under bench/results/ (no extension). */
  name: string;
  title: string;
  cases: C[];
  subject: Impl<C>;
  anchors: Impl<C>[];
  /** Measured repetitions per implementation and case; at least 5. */
  repetitions?: number;
  /** Each measurement runs the op in a loop for at least this long. */
  minTimeMs?: number;
  warmupMs?: number;
  xLabel?: string;
  /** What the chart shows: `throughput` (GB/s or items/s, higher is better) or `latency` (ns per op). */
  chart?: 'throughput' | 'latency';
  /** Directory for results; default `bench/results` under the current directory. */
  outDir?: string;
  /** Write nothing (used by the tests of benchmarks). */
  dryRun?: boolean;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export interface ImplResult {
  impl: string;
  nsPerOp: Stat;
  /** GB/s when the case has `bytes`, items/s when it has `items`. */
  throughput?: Stat & { unit: 'GB/s' | 'items/s' };
  samples: number[];
}

export interface CaseResult {
  case: string;
  x: number;
  results: ImplResult[];
  /** anchor name -> anchor median ns/op divided by subject median ns/op (>1: the subject is faster). */
  speedup: Record<string, number>;
}

export interface BenchResult {
  name: string;
  title: string;
  subject: string;
  anchors: string[];
  date: string;
  node: string;
  cpus: string;
  peakRssBytes: number;
  cases: CaseResult[];
}

export function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { median: percentile(s, 50, true), min: s[0] ?? Number.NaN, max: s[s.length - 1] ?? Number.NaN };
}

/** The p-th percentile (nearest rank) of `xs`; pass `sorted` when `xs` is already ascending. */
export function percentile(xs: ArrayLike<number>, p: number, sorted = false): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted ? xs : Float64Array.from(xs).sort();
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank] as number;
}

/** Peak resident set size of this process so far, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

async function timeLoop(op: Op, count: number, isAsync: boolean): Promise<number> {
  const t0 = process.hrtime.bigint();
  if (isAsync) for (let i = 0; i < count; i++) await op();
  else for (let i = 0; i < count; i++) op();
  return Number(process.hrtime.bigint() - t0);
}

/** Runs a benchmark: warm-up, alternating measured repetitions, a printed table, JSON and SVG. */
export async function runBench<C extends Case>(spec: BenchSpec<C>): Promise<BenchResult> {
  const reps = Math.max(5, spec.repetitions ?? 7);
  const minNs = (spec.minTimeMs ?? 200) * 1e6;
  const warmNs = (spec.warmupMs ?? 200) * 1e6;
  const impls = [spec.subject, ...spec.anchors];
  const cases: CaseResult[] = [];
  for (const c of spec.cases) {
    const ops: { op: Op; isAsync: boolean; count: number }[] = [];
    for (const impl of impls) {
      const op = await impl.setup(c);
      const probe = op();
      const isAsync = probe instanceof Promise;
      if (isAsync) await probe;
      // Warm up and calibrate: double the loop until one loop takes at least the warm-up time.
      let count = 1;
      for (;;) {
        const ns = await timeLoop(op, count, isAsync);
        if (ns >= warmNs || count >= 1 << 30) {
          count = Math.max(1, Math.ceil((count * minNs) / Math.max(1, ns)));
          break;
        }
        count *= 2;
      }
      ops.push({ op, isAsync, count });
    }
    const samples: number[][] = impls.map(() => []);
    for (let r = 0; r < reps; r++) {
      const order = r % 2 === 0 ? impls.map((_, i) => i) : impls.map((_, i) => impls.length - 1 - i);
      for (const i of order) {
        const o = ops[i]!;
        const ns = await timeLoop(o.op, o.count, o.isAsync);
        samples[i]!.push(ns / o.count);
      }
    }
    for (const impl of impls) await impl.teardown?.(c);
    const results: ImplResult[] = impls.map((impl, i) => {
      const ns = samples[i]!;
      const r: ImplResult = { impl: impl.name, nsPerOp: stat(ns), samples: ns };
      if (c.bytes !== undefined) r.throughput = { ...stat(ns.map((t) => c.bytes! / t)), unit: 'GB/s' };
      else if (c.items !== undefined)
        r.throughput = { ...stat(ns.map((t) => (c.items! * 1e9) / t)), unit: 'items/s' };
      return r;
    });
    const subj = results[0]!.nsPerOp.median;
    const speedup: Record<string, number> = {};
    for (const r of results.slice(1)) speedup[r.impl] = r.nsPerOp.median / subj;
    const cr: CaseResult = { case: c.name, x: c.x, results, speedup };
    cases.push(cr);
    printCase(spec.title, cr, spec.subject.name);
  }
  const result: BenchResult = {
    name: spec.name,
    title: spec.title,
    subject: spec.subject.name,
    anchors: spec.anchors.map((a) => a.name),
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${(await import('node:os')).cpus().length} x ${(await import('node:os')).cpus()[0]?.model ?? '?'}`,
    peakRssBytes: peakRssBytes(),
    cases,
  };
  console.log(`peak RSS: ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
  if (!spec.dryRun) {
    const chartKind = spec.chart ?? (spec.cases.some((c) => c.bytes || c.items) ? 'throughput' : 'latency');
    const yOf = (r: ImplResult) =>
      chartKind === 'throughput' && r.throughput ? r.throughput.median : r.nsPerOp.median;
    const unit =
      chartKind === 'throughput' ? (cases[0]?.results[0]?.throughput?.unit ?? 'ops/s') : 'ns per op';
    writeResults(spec.outDir ?? 'bench/results', spec.name, result, {
      title: spec.title,
      xLabel: spec.xLabel ?? 'input size',
      yLabel: unit,
      logX: true,
      logY: chartKind === 'latency',
      series: impls.map((impl, i) => ({
        name: impl.name,
        points: cases.map((c) => [c.x, yOf(c.results[i]!)] as [number, number]),
      })),
    });
  }
  return result;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (n >= 100) return n.toFixed(0);
  if (n >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

function printCase(title: string, c: CaseResult, subject: string): void {
  const rows = c.results.map((r) => [
    r.impl,
    `${fmt(r.nsPerOp.median)} ns`,
    `${fmt(r.nsPerOp.min)}-${fmt(r.nsPerOp.max)}`,
    r.throughput ? `${fmt(r.throughput.median)} ${r.throughput.unit}` : '',
    r.impl === subject ? '' : `${c.speedup[r.impl]!.toFixed(2)}x`,
  ]);
  console.log(`\n${title} — ${c.case}`);
  console.log(table(['implementation', 'median/op', 'min-max', 'throughput', `${subject} speedup`], rows));
}

/** A plain-text table with aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(w[i]!)).join('  ');
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  series: { name: string; points: [number, number][] }[];
}

/** Writes `<dir>/<name>.json` and, when a chart is given, `<dir>/<name>.svg`. */
export function writeResults(dir: string, name: string, data: unknown, chart?: Chart): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(data, null, 2)}\n`);
  if (chart) writeFileSync(join(dir, `${name}.svg`), renderSvg(chart));
  console.log(`wrote ${join(dir, `${name}.json`)}${chart ? ` and ${name}.svg` : ''}`);
}

const palette = [
  '#d62728',
  '#1f77b4',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#17becf',
];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A line chart as a standalone SVG document, one line per series (the first series is drawn thickest). */
export function renderSvg(chart: Chart): string {
  const W = 720;
  const H = 420;
  const m = { l: 70, r: 190, t: 40, b: 50 };
  const pts = chart.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && y > 0);
  const tx = (v: number) => (chart.logX ? Math.log10(Math.max(v, 1e-12)) : v);
  const ty = (v: number) => (chart.logY ? Math.log10(Math.max(v, 1e-12)) : v);
  const xs = pts.map(([x]) => tx(x));
  const ys = pts.map(([, y]) => ty(y));
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  let y0 = chart.logY ? Math.min(...ys) : 0;
  let y1 = Math.max(...ys);
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
  y1 += (y1 - y0) * 0.05;
  const px = (x: number) => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((ty(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="15">${esc(chart.title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#333"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#333"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(16 ${(H - m.b + m.t) / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    const y = H - m.b - ((H - m.t - m.b) * i) / 5;
    const label = chart.logY ? fmt(10 ** v) : fmt(v);
    out.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${label}</text>`);
  }
  const xTicks = [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b);
  for (const x of xTicks)
    out.push(`<text x="${px(x)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(x)}</text>`);
  chart.series.forEach((s, i) => {
    const color = palette[i % palette.length];
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && y > 0);
    const d = good.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="${i === 0 ? 3 : 1.5}"/>`);
    for (const [x, y] of good)
      out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
    out.push(`<rect x="${W - m.r + 12}" y="${m.t + i * 20 - 9}" width="12" height="12" fill="${color}"/>`);
    out.push(`<text x="${W - m.r + 30}" y="${m.t + i * 20 + 1}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
