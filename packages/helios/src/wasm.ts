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

export class LazyModule<T extends ModuleExports> {
  private loaded: T | null | undefined; // null: no module (not built, or no WebAssembly)
  private wanted = true;

  /** `file`: the module's name in build/. */
  constructor(private readonly file: string) {}

  /** The module, or undefined when it is not built, the runtime has no WebAssembly, or it is switched off. */
  get(): T | undefined {
    if (!this.wanted) return undefined;
    if (this.loaded === undefined) {
      try {
        const bytes = readFileSync(new URL(`../build/${this.file}`, import.meta.url));
        const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
          env: { abort: () => undefined },
        }).exports as unknown as T;
        ex.memory.grow(2);
        ex.setup();
        this.loaded = ex;
      } catch {
        this.loaded = null;
      }
    }
    return this.loaded ?? undefined;
  }

  /** Switches the module off (the JavaScript path runs) or back on; for tests. */
  use(on: boolean): void {
    this.wanted = on;
  }
}
