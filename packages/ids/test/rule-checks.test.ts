// Option values Snort 3 refuses at load, refused here naming the option and its value: each was taken
// before and then ignored, misread or never matched on.
import { describe, expect, it } from 'vitest';
import { parseRule } from '../src/index.js';

const rule = (opts: string, proto = 'tcp') => parseRule(`alert ${proto} any any -> any any (${opts} sid:1;)`);

describe('content modifiers', () => {
  it('refuses an absolute modifier (offset, depth) with a relative one (distance, within) on one content', () => {
    // Snort 3 (ips_content.cc: "offset can't be used with itself, distance, or within", and the same for
    // depth, distance and within); before, the offset and depth were dropped when distance or within came
    for (const [opts, msg] of [
      ['content:"a"; content:"b"; offset:1; distance:2;', 'distance with offset on one content'],
      ['content:"a"; content:"b"; within:5; depth:9;', 'depth with within on one content'],
      ['content:"a"; content:"b",distance 1,offset 3;', 'offset with distance on one content'],
      ['content:"a"; content:"b",depth 4,within 4;', 'within with depth on one content'],
      ['byte_extract:1,0,n; content:"b"; offset:n; within:4;', 'within with offset on one content'],
    ] as const)
      expect(() => rule(opts), opts).toThrow(msg);
    expect(() => rule('content:"a"; content:"b"; offset:1; distance:2;')).toThrow(
      /^<rule>:1:\d+: distance with offset/,
    );
    // one kind per content, as the community rules write them
    for (const opts of [
      'content:"a"; offset:1; depth:4; content:"b"; distance:2; within:5;',
      'content:"a",offset 1,depth 4; content:"b",distance 0,within 3;',
    ])
      expect(rule(opts).contents.length, opts).toBe(2);
  });
});
