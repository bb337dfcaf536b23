// The resolve hook of bench-dist.mjs: packages/<p>/src/<path>.(ts|js) -> packages/<p>/dist/<path>.js when
// that file exists (scripts/bench.mjs builds the package first).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const srcFile = /^(.*\/packages\/[^/]+)\/src\/(.+)\.(?:ts|js|mts)$/;

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (!r.url.startsWith('file:')) return r;
  const m = srcFile.exec(fileURLToPath(r.url));
  if (!m) return r;
  const built = `${m[1]}/dist/${m[2]}.js`;
  return existsSync(built) ? { ...r, url: pathToFileURL(built).href, format: 'module' } : r;
}
