// The node arguments that run `strata nbd serve` of a 1 MiB memory device on a free loopback port from the
// sources (helpers/cli.ts), printing its address as JSON once it serves; `flags` go after.
const cli = new URL('./cli.ts', import.meta.url).pathname;

export function serveMemArgs(flags: string[] = []): string[] {
  return [
    '--import',
    'tsx',
    cli,
    'nbd',
    'serve',
    '--mem',
    '1M',
    '--listen',
    '127.0.0.1:0',
    '--json',
    ...flags,
  ];
}
