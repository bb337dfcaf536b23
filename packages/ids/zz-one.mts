import { translatePcre } from './src/index.ts';
for (const v of process.argv.slice(2)) { const p = translatePcre(v); console.log(typeof p === 'string' ? p : `${p.re.source}  /${p.re.flags}`); }
