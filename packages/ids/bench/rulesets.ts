// The rule sets the throughput bench runs (and its sustained child process): every community rule the
// engine loads, and the HTTP rules alone.
import { readFileSync } from 'node:fs';
import { Engine, parseRules, type Rule } from '../src/index.js';

/** Where the shared IDS material lies (../shared beside the repo). */
export const idsShared = new URL('../../../../shared/ids/', import.meta.url).pathname;

/** [name, rules] of the bench's rule sets, in the order it runs them. */
export function benchRuleSets(): [string, Rule[]][] {
  const set = parseRules(readFileSync(`${idsShared}rules/snort3-community.rules`, 'utf8'), 'community');
  const engine = new Engine(set.rules);
  const loaded = new Set(engine.compiled.map((c) => c.rule.sid));
  const httpSids = new Set(engine.compiled.filter((c) => c.mode === 'http').map((c) => c.rule.sid));
  return [
    ['all loaded rules', set.rules.filter((r) => loaded.has(r.sid))],
    ['HTTP rules only', set.rules.filter((r) => httpSids.has(r.sid))],
  ];
}
