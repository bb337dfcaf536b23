/// <reference path="../../../types/webassembly.d.ts" />
/**
 * The package's WebAssembly modules (assembly/*.ts, built to build/*.wasm by the `build:wasm` script),
 * each loaded on first use, not at import: every `strata` command imports helios. Each module exports its
 * memory and a `setup` run once after loading. Tests switch a module off to run the JavaScript path that
 * stays beside it as the reference and the fallback.
 */
import { readFileSync } from 'node:fs';

export interface ModuleExports {
  memory: WebAssembly.Memory;
  setup(): void;
}

/**
 * A module's memory only grows. One that has grown past this (a page of long lines, say: about the page's
 * bytes times its string columns) while its last call used under a quarter of it is made again from the
 * compiled module on its next use, so a long-running process does not keep its largest page's memory for
 * good, and a stream whose every page is that large does not make a new one each page. Every call of the
 * modules starts afresh (`setup` fills their constant tables) and callers copy out what they need before
 * their next call.
 */
export const wasmMemoryKeepBytes = 64 << 20;

export class LazyModule<T extends ModuleExports> {
  private compiled: WebAssembly.Module | null | undefined; // null: not built, or no WebAssembly
  private loaded: T | undefined;
  private wanted = true;
  /** The bytes of memory the last call used (`used`). */
  private lastUsed = 0;

  /** `file`: the module's name in build/. */
  constructor(private readonly file: string) {}

  /** The module, or undefined when it is not built, the runtime has no WebAssembly, or it is switched off. */
  get(): T | undefined {
    if (!this.wanted) return undefined;
    if (this.compiled === undefined) {
      try {
        this.compiled = new WebAssembly.Module(
          readFileSync(new URL(`../build/${this.file}`, import.meta.url)),
        );
      } catch {
        this.compiled = null;
      }
    }
    if (this.compiled === null) return undefined;
    const bytes = this.loaded?.memory.buffer.byteLength ?? 0;
    if (this.loaded === undefined || (bytes > wasmMemoryKeepBytes && this.lastUsed * 4 < bytes)) {
      try {
        const ex = new WebAssembly.Instance(this.compiled, { env: { abort: () => undefined } })
          .exports as unknown as T;
        ex.memory.grow(2);
        ex.setup();
        this.loaded = ex;
      } catch {
        return undefined; // no memory for an instance now: the JavaScript path
      }
    }
    return this.loaded;
  }

  /** Records how many bytes of the module's memory a call uses (its regions' end), before it grows it. */
  used(bytes: number): void {
    this.lastUsed = bytes;
  }

  /** Switches the module off (the JavaScript path runs) or back on; for tests. */
  use(on: boolean): void {
    this.wanted = on;
  }
}
