// The community rules' pcres on subjects built against them: each expression's first exec over a buffer
// as the engine runs it (guarded where `firstExecGuarded` finds a shape it can guard, bounded in
// backtracks as always; with a backreference, or over a buffer past pcreShortMax with loops V8 may be
// polynomial on, in the step machine, steps.ts) against the expression in V8's RegExp, bounded in
// backtracks, unguarded, side by side in one process, over the same subjects. V8 tries every start
// position and its backtrack bound does not count a loop's steps, so an expression such as
// `filename=[^\n]*\.jpeg` is quadratic in a buffer of repeated `filename=`; the guards skip the starts that
// cannot begin the first match, and the step machine takes steps linear in the buffer. Subjects (`--bytes`
// long, 8 KiB by default, the largest HTTP start line the parser takes; bodies go to 64 KiB and
// decompressed ones to 256 KiB): runs of one character or pair, of each of the rule's contents, of all of
// them together, and of the words of the pcre itself, alone and between blanks; and built against its
// loops (`pumpSubjects`: the text that leads into each loop, then what the loop takes, and the two
// repeated). Each expression's time is its slowest subject (the best of `--tries` execs each); an exec of
// the step machine that runs out of its budget ends fast with no match, so those are counted apart.
// Usage: npm run bench -- ids pcre [-- --bytes 8192 --tries 2 --top 12]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { boundedRegExp } from '@strata/cli';
import { Engine, type PcreExec, parseRules, pcreBacktracksMaxDefault, pcreShortMax } from '../src/index.js';
import { pumpSubjects } from '../src/steps.js';

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '8192' },
    tries: { type: 'string', default: '2' },
    top: { type: 'string', default: '12' },
  },
});
const bytes = Number(values.bytes);
const tries = Number(values.tries);
const shared = new URL('../../../../shared/ids/', import.meta.url).pathname;
const set = parseRules(readFileSync(`${shared}rules/snort3-community.rules`, 'utf8'), 'community');
const engine = new Engine(set.rules);

type PcreStep = { kind: 'pcre'; reG: PcreExec; reGFirst: PcreExec | undefined };
/** The expression as V8 runs it, unguarded: what the engine ran before the guards and the step machine. */
const inV8 = (re: PcreExec) =>
  re instanceof RegExp ? re : boundedRegExp(re.source, re.flags, pcreBacktracksMaxDefault);
type Steps = { kind: string }[];
const stepLists = (c: { steps: Steps; header?: Steps; http?: { groups: { steps: Steps }[] } }) => [
  c.steps,
  ...(c.header ? [c.header] : []),
  ...(c.http?.groups.map((g) => g.steps) ?? []),
];

const floods = ['a', 'A', ' ', '/', '%', '0', '\x00', '\n', '\r\n', '&a=', '=', '.', '\\', '<', '"', '${'];
const fill = (s: string) => s.repeat(Math.ceil(bytes / s.length)).slice(0, bytes);

/** Milliseconds of re's first exec over text, the best of `tries`. */
function timeExec(re: PcreExec, text: string): number {
  let best = Number.POSITIVE_INFINITY;
  for (let k = 0; k < tries; k++) {
    re.lastIndex = 0;
    const t = performance.now();
    re.exec(text);
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

type Row = {
  sid: number;
  pcre: string;
  guarded: boolean;
  /** Run in the step machine (a backreference; or loops V8 may be polynomial on, over more than pcreShortMax). */
  stepped: boolean;
  engineMs: number;
  plainMs: number;
  subject: string;
  /** Subjects on which the engine's exec ran out of its step budget (no match, as PCRE's match limit). */
  outOfSteps?: number;
};
const rows: Row[] = [];
const seen = new Set<PcreExec>();
for (const c of engine.compiled) {
  const option = c.rule.options.filter((o) => o.keyword === 'pcre');
  let k = 0;
  for (const steps of stepLists(c as never))
    for (const s of steps) {
      if (s.kind !== 'pcre') continue;
      const p = s as PcreStep;
      const value = option[k++]?.value ?? '';
      if (seen.has(p.reG)) continue;
      seen.add(p.reG);
      const subjects = floods.map(fill);
      const contents = c.rule.contents.map((x) => Buffer.from(x.bytes).toString('latin1')).filter((x) => x);
      for (const x of contents) subjects.push(fill(x));
      if (contents.length > 1) subjects.push(fill(contents.join('')));
      // each word alone and between blanks (a pcre often wants \s around a command: \sLIST\s)
      for (const w of (value.match(/[A-Za-z0-9_=-]{3,}/g) ?? []).slice(0, 4))
        subjects.push(fill(w), fill(` ${w} `));
      // and built against its loops: the text that leads into each, then what it takes
      subjects.push(...(pumpSubjects(p.reG.source, p.reG.flags, bytes) ?? []));
      const first = p.reGFirst ?? p.reG;
      const plain = inV8(p.reG);
      let row: Row | undefined;
      let outOfSteps = 0;
      for (const text of subjects) {
        const plainMs = timeExec(plain, text);
        const limits = engine.stats.pcreStepLimits;
        const engineMs = first === plain ? plainMs : timeExec(first, text);
        if (engine.stats.pcreStepLimits > limits) outOfSteps++;
        if (!row || Math.max(engineMs, plainMs) > Math.max(row.engineMs, row.plainMs))
          row = {
            sid: c.rule.sid,
            pcre: value,
            guarded: p.reGFirst !== undefined,
            // a backreference, or loops V8 may be polynomial on over a buffer past pcreShortMax
            stepped: !(p.reG instanceof RegExp),
            engineMs,
            plainMs,
            subject: text.slice(0, 12),
          };
      }
      if (row) rows.push({ ...row, outOfSteps });
    }
}

const over = (ms: number, f: (r: Row) => number) => rows.filter((r) => f(r) > ms).length;
const sum = (f: (r: Row) => number) => rows.reduce((a, r) => a + f(r), 0);
const guarded = rows.filter((r) => r.guarded);
const stepped = rows.filter((r) => r.stepped);
console.log(
  `${rows.length} pcres of ${engine.compiled.length} loaded rules, subjects of ${bytes} bytes, load average ${loadavg()[0]!.toFixed(1)}`,
);
console.log(
  `as the engine runs them: ${over(1, (r) => r.engineMs)} over 1 ms, ${over(5, (r) => r.engineMs)} over 5 ms, ${over(20, (r) => r.engineMs)} over 20 ms, all ${(sum((r) => r.engineMs) / 1000).toFixed(2)} s | V8, unguarded: ${over(1, (r) => r.plainMs)}, ${over(5, (r) => r.plainMs)}, ${over(20, (r) => r.plainMs)}, ${(sum((r) => r.plainMs) / 1000).toFixed(2)} s`,
);
const outOfSteps = rows.filter((r) => (r.outOfSteps ?? 0) > 0);
console.log(
  `out of steps in the step machine (no match, as PCRE's match limit): ${outOfSteps.length} pcres, on ${outOfSteps.reduce((a, r) => a + r.outOfSteps!, 0)} subjects`,
);
for (const [name, part] of [
  ['guarded', guarded],
  [`in the step machine (a backreference; ambiguous loops over more than ${pcreShortMax} bytes)`, stepped],
] as const)
  console.log(
    `the ${part.length} ${name}: ${(part.reduce((a, r) => a + r.engineMs, 0) / 1000).toFixed(3)} s against ${(part.reduce((a, r) => a + r.plainMs, 0) / 1000).toFixed(3)} s in V8 unguarded; slowest ${Math.max(0, ...part.map((r) => r.engineMs)).toFixed(2)} ms against ${Math.max(0, ...part.map((r) => r.plainMs)).toFixed(2)} ms`,
  );
const show = (r: Row) =>
  `${r.engineMs.toFixed(2).padStart(9)} ms ${r.plainMs.toFixed(2).padStart(9)} ms  ${String(r.sid).padStart(6)}  ${JSON.stringify(r.subject).padEnd(18)} ${r.pcre.slice(0, 70)}`;
console.log('slowest as the engine runs them (engine, V8 unguarded, sid, subject, pcre):');
for (const r of [...rows].sort((a, b) => b.engineMs - a.engineMs).slice(0, Number(values.top)))
  console.log(show(r));
console.log('guarded, by time saved:');
for (const r of [...guarded]
  .sort((a, b) => b.plainMs - b.engineMs - (a.plainMs - a.engineMs))
  .slice(0, Number(values.top)))
  console.log(show(r));
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
// the summary, the slowest as the engine runs them and every guarded one (not all 1,087 rows)
const summary = {
  pcres: rows.length,
  guarded: guarded.length,
  stepped: stepped.length,
  outOfSteps: outOfSteps.map((r) => ({ sid: r.sid, subjects: r.outOfSteps, pcre: r.pcre })),
  steppedMs: sum((r) => (r.stepped ? r.engineMs : 0)),
  steppedV8Ms: sum((r) => (r.stepped ? r.plainMs : 0)),
  engine: {
    over1ms: over(1, (r) => r.engineMs),
    over5ms: over(5, (r) => r.engineMs),
    over20ms: over(20, (r) => r.engineMs),
    totalMs: sum((r) => r.engineMs),
  },
  unguarded: {
    over1ms: over(1, (r) => r.plainMs),
    over5ms: over(5, (r) => r.plainMs),
    over20ms: over(20, (r) => r.plainMs),
    totalMs: sum((r) => r.plainMs),
  },
};
const line = (r: Row) => JSON.stringify({ ...r, pcre: r.pcre.slice(0, 120) });
writeFileSync(
  new URL(`results/pcre-${bytes}.json`, import.meta.url),
  `{"bytes":${bytes},"tries":${tries},"loadAverage":${loadavg()[0]},"summary":${JSON.stringify(summary)},\n"slowest":[\n${[
    ...rows,
  ]
    .sort((a, b) => b.engineMs - a.engineMs)
    .slice(0, 50)
    .map(line)
    .join(',\n')}],\n"guarded":[\n${guarded.map(line).join(',\n')}]}\n`,
);
console.log(`wrote bench/results/pcre-${bytes}.json`);
