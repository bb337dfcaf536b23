import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { percentile, renderSvg, runBench } from '../src/index.js';

describe('bench harness', () => {
  it('alternates subject and anchor, reports ratios, writes JSON and SVG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
    try {
      const data = new Uint8Array(4096).fill(7);
      const r = await runBench({
        name: 'sum',
        title: 'sum of bytes',
        cases: [{ name: '4 KiB', x: 4096, bytes: 4096 }],
        subject: {
          name: 'loop',
          setup: () => () => {
            let s = 0;
            for (let i = 0; i < data.length; i++) s += data[i]!;
            return s;
          },
        },
        // The anchor does 8x the work, so the subject must come out clearly faster.
        anchors: [
          {
            name: 'loop x8',
            setup: () => () => {
              let s = 0;
              for (let k = 0; k < 8; k++) for (let i = 0; i < data.length; i++) s += data[i]!;
              return s;
            },
          },
        ],
        repetitions: 5,
        minTimeMs: 5,
        warmupMs: 5,
        outDir: dir,
      });
      expect(r.cases[0]!.results[0]!.samples.length).toBe(5);
      expect(r.cases[0]!.speedup['loop x8']).toBeGreaterThan(2);
      const json = JSON.parse(readFileSync(join(dir, 'sum.json'), 'utf8'));
      expect(json.subject).toBe('loop');
      expect(readFileSync(join(dir, 'sum.svg'), 'utf8')).toMatch(/^<svg[\s\S]*loop x8[\s\S]*<\/svg>\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('computes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('renders a chart even with one point', () => {
    const svg = renderSvg({
      title: 't<',
      xLabel: 'x',
      yLabel: 'y',
      series: [{ name: 'a', points: [[1, 1]] }],
    });
    expect(svg).toContain('t&lt;');
  });
});
