// `pnpm bench <suite> [--quick] [--out DIR]`: runs one suite from ./suites/<suite>.js, prints its
// table and writes benchmarks/results/<suite>.json.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, type Suite, writeResults } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const SUITE_NAME = /^[a-z][a-z0-9-]*$/;

async function main(argv: string[]): Promise<number> {
  const args = argv.filter((a) => !a.startsWith('--'));
  const quick = argv.includes('--quick');
  const outIndex = argv.indexOf('--out');
  const outDir = outIndex >= 0 ? argv[outIndex + 1] : join(here, '..', 'results');
  const name = args[0];
  if (!name || !SUITE_NAME.test(name) || !outDir) {
    console.error('usage: pnpm bench <suite> [--quick] [--out DIR]');
    return 2;
  }
  let suite: Suite;
  try {
    suite = ((await import(`./suites/${name}.js`)) as { suite: Suite }).suite;
  } catch (err) {
    console.error(`bench: no suite named '${name}' (${(err as Error).message})`);
    return 2;
  }
  console.log(`# ${suite.name}${quick ? ' (quick)' : ''}\n${suite.description}\n`);
  const rows = await suite.run({ quick });
  console.log(formatTable(rows));
  const file = writeResults(outDir, suite.name, rows);
  console.log(`\nwrote ${file}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
