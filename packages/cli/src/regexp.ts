import { setFlagsFromString } from 'node:v8';

// A JavaScript RegExp backtracks without bound: a pattern written for ordinary input can take seconds or
// hours on a subject built against it (a community IDS rule's `\s+.*?%.*?%` over 4 KiB of blanks and a
// %: 14 s; `^(\w+\s?)*$` over 60 letters and a bang: centuries). Input from the network or from someone
// else's logs must not be able to stop the process that way. PCRE's answer is a match limit (Snort 3's
// `detection.pcre_match_limit`, Suricata's `pcre.match-limit`): a match that needs more backtracking than
// the limit fails, as if the subject did not match. V8 has such a limit inside (a RegExp made with a
// backtrack limit returns no match once an exec has backtracked that many times), reachable from
// JavaScript only through its runtime function `%NewRegExpWithBacktrackLimit`, which needs
// `--allow-natives-syntax` while the calling function is compiled. So the flag is set, one function is
// compiled and called, and the flag is cleared again; the RegExp it returns is an ordinary RegExp in every
// other way (flags, lastIndex, exec, test, named groups). Where the runtime lacks the function the RegExp
// is made without a limit, and `regExpBacktrackLimitWorks()` says so.
//
// A call that fails is made again with the flag on: V8 drops the bytecode of a function left unused
// through a few major collections and compiles it again at its next call, with the flags of that moment.
// A process that made its bounded RegExps, worked a while and then made more (an IDS worker loading a new
// rule set) got "SyntaxError: Unexpected token '%'" for each of them: every pcre rule of that rule set
// refused.
//
// What V8 counts is backtracks, not steps: a greedy or lazy loop over a character class gives back or
// takes characters without counting them, so the bound ends the exponential cases at once, and cuts the
// polynomial ones (the \s+ pattern above: 15 ms with a bound of 10,000), but community rule sid 26951's
// `[^&]+&[a-z]=[a-f0-9]{16}&[a-z]=[a-f0-9]{16}$` over 64 KB of letters still takes 0.18 s with a bound of
// 1,000 and 1.1 s with 10,000 (4.2 s with 100,000; 20 ms or less over 4 KiB).

type Make = (source: string, flags: string, backtracksMax: number) => RegExp;

/** The process was started with natives syntax on: it stays on. */
const nativesSyntaxGiven = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes(
  '--allow-natives-syntax',
);

let make: Make | null | undefined;

/**
 * `run` with natives syntax on, and off again after (unless the process was started with it). V8's flags
 * are the process's: a worker thread clearing the flag between this thread's setting it and `run`'s compile
 * makes that compile fail, so callers try a failure again.
 */
function withNatives<T>(run: () => T): T {
  setFlagsFromString('--allow-natives-syntax');
  try {
    return run();
  } finally {
    if (!nativesSyntaxGiven) setFlagsFromString('--no-allow-natives-syntax');
  }
}

/** Tries of a compile (or a call that compiles again) before giving up. */
const triesMax = 20;

function compileOnce(): Make | null {
  // It must bound: the first alternative fails after about 2^12 backtracks, the second then matches.
  const probe = '^(?:a|a)*c|^a*b';
  const subject = `${'a'.repeat(12)}b`;
  try {
    return withNatives(() => {
      const f = new Function('s', 'f', 'n', 'return %NewRegExpWithBacktrackLimit(s, f, n);') as Make;
      const bounded = f(probe, '', 1000);
      if (!(bounded instanceof RegExp) || bounded.source !== probe) return null;
      if (bounded.exec(subject) !== null || f(probe, '', 1 << 24).exec(subject) === null) return null;
      return f;
    });
  } catch {
    return null;
  }
}

function compileMake(): Make | null {
  // a failure is tried again before the runtime is taken to lack the function
  for (let attempt = 0; attempt < triesMax; attempt++) {
    const f = compileOnce();
    if (f) return f;
  }
  return null;
}

/**
 * `new RegExp(source, flags)`, except that an exec (or test, match, replace...) that backtracks more than
 * `backtracksMax` times returns no match, where a plain RegExp would go on (for ever, on some subjects).
 * Backtracks, not steps: see above for what the bound leaves. Throws what `new RegExp` throws for a bad
 * pattern.
 */
export function boundedRegExp(source: string, flags: string, backtracksMax: number): RegExp {
  if (!Number.isInteger(backtracksMax) || backtracksMax < 1)
    throw new RangeError(`backtracksMax must be a positive integer, got ${backtracksMax}`);
  // the pattern's own errors, worded as everywhere else
  const plain = new RegExp(source, flags);
  make ??= compileMake();
  const f = make;
  if (f === null) return plain;
  for (let attempt = 1; ; attempt++) {
    try {
      // first as it is (setting and clearing the flag costs about 6 us, the call under 1): what fails is
      // a call that had to compile `f` again, the pattern having compiled above; then with the flag on
      return attempt === 1
        ? f(source, flags, backtracksMax)
        : withNatives(() => f(source, flags, backtracksMax));
    } catch (e) {
      if (attempt === triesMax)
        throw new Error(
          `boundedRegExp: V8 refused its natives syntax ${triesMax} times: ${(e as Error).message}`,
        );
    }
  }
}

/** Whether this runtime gives `boundedRegExp` its bound (else it returns a plain RegExp). */
export function regExpBacktrackLimitWorks(): boolean {
  make ??= compileMake();
  return make !== null;
}
