import type { Command, DemoStep } from '@strata/cli';

export * from './contract.js';

/** This package's `strata` subcommands. */
export const commands: Command[] = [];

/** This package's steps of `strata demo`. */
export const demos: DemoStep[] = [];
