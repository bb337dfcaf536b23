// Starts `strata log server` and `strata log sequencer` as their own processes (test/helpers/strata-log.ts)
// on 127.0.0.1 and stops them: SIGTERM, then SIGKILL after stopTimeoutMs. A process still running when
// this one exits is killed then; one whose parent died by SIGKILL stops when its stdin closes.
import { type ChildProcess, spawn } from 'node:child_process';

const entry = new URL('./strata-log.ts', import.meta.url).pathname;
const benchHooks = process.env.STRATA_BENCH_HOOKS ? ['--import', process.env.STRATA_BENCH_HOOKS] : [];
const readyTimeoutMs = 30_000;
const stopTimeoutMs = 5_000;
const stderrBytesMax = 4096;

export interface LogProcess {
  proc: ChildProcess;
  /** `127.0.0.1:PORT` */
  address: string;
  /** SIGTERM, then SIGKILL if it has not exited within stopTimeoutMs; resolves with its exit code. */
  stop(): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

/**
 * Runs `strata log <args> --json` with a listen address of 127.0.0.1:0, and resolves once it has printed
 * the port it listens on.
 */
export function startLogProcess(args: string[]): Promise<LogProcess> {
  const proc = spawn(
    process.execPath,
    // under `npm run bench` (see scripts/bench.mjs) the package's build rather than its sources
    ['--import', 'tsx', ...benchHooks, entry, ...args, '--listen', '127.0.0.1:0', '--json'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < stderrBytesMax) stderr += c.toString('utf8');
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    const done = exited(proc);
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
    const code = await done;
    clearTimeout(timer);
    return code;
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`strata log ${args.join(' ')}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail(`not listening after ${readyTimeoutMs} ms`), readyTimeoutMs);
    let out = '';
    const onData = (c: Buffer) => {
      out += c.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      proc.stdout!.off('data', onData);
      proc.off('exit', onExit);
      clearTimeout(timer);
      let port: unknown;
      try {
        port = (JSON.parse(out.slice(0, nl)) as { port?: unknown }).port;
      } catch {}
      if (typeof port !== 'number')
        return fail(`expected a JSON line with its port, got '${out.slice(0, nl)}'`);
      proc.stdout!.resume();
      resolve({ proc, address: `127.0.0.1:${port}`, stop });
    };
    const onExit = (code: number | null) => fail(`exited with ${code} before listening`);
    proc.stdout!.on('data', onData);
    proc.once('exit', onExit);
  });
}
