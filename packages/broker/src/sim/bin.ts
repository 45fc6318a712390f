// Entry point of `pnpm sim cluster` (see main.ts).
import { main } from './main.js';

main(process.argv.slice(2).filter((a) => a !== 'cluster')).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
